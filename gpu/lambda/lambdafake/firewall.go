// Package lambdafake serves Lambda Cloud's inbound firewall rules (GET and PUT
// /firewall-rules, API v1) in memory, refusing what Lambda's OpenAPI document refuses, for the
// Lambda client's tests and the jobs that keep the rules.
package lambdafake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

// Rule is a FirewallRule as the API documents it.
type Rule struct {
	Protocol      string `json:"protocol"`
	PortRange     []int  `json:"port_range,omitempty"`
	SourceNetwork string `json:"source_network"`
	Description   string `json:"description"`
}

// Firewall is the account's inbound rules behind GET and PUT /firewall-rules. The zero value
// has no rules and takes any Bearer key; set APIKey to require one.
type Firewall struct {
	APIKey string

	mu    sync.Mutex
	rules []Rule
	puts  int
	fail  []int // statuses to answer the next requests with
}

// SetRules replaces the rules, as someone editing them in Lambda's console.
func (f *Firewall) SetRules(rules []Rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append([]Rule(nil), rules...)
}

// Rules returns the rules as they are.
func (f *Firewall) Rules() []Rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Rule(nil), f.rules...)
}

// Puts counts the accepted PUTs.
func (f *Firewall) Puts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts
}

// FailNext answers the next n requests with status (500: provider/internal-unavailable, 429:
// rate limited, 401: invalid key).
func (f *Firewall) FailNext(status, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.fail = append(f.fail, status)
	}
}

// ServeHTTP answers /firewall-rules (under any prefix) with Lambda's envelope.
func (f *Firewall) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.HasSuffix(r.URL.Path, "/firewall-rules") {
		writeError(w, http.StatusNotFound, "global/object-does-not-exist", "Not found.")
		return
	}
	if key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok || (f.APIKey != "" && key != f.APIKey) {
		writeError(w, http.StatusUnauthorized, "global/invalid-api-key", "API key was invalid, expired, or deleted.")
		return
	}
	if len(f.fail) > 0 {
		status := f.fail[0]
		f.fail = f.fail[1:]
		switch status {
		case http.StatusTooManyRequests:
			writeError(w, status, "global/rate-limit-exceeded", "Too many requests.")
		case http.StatusUnauthorized:
			writeError(w, status, "global/invalid-api-key", "API key was invalid, expired, or deleted.")
		default:
			writeError(w, status, "provider/internal-unavailable", "Provider unavailable")
		}
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeData(w, f.rules)
	case http.MethodPut:
		rules, err := parsePut(r.Body)
		if err != nil {
			writeError(w, http.StatusBadRequest, "global/invalid-parameters", err.Error())
			return
		}
		f.rules = rules
		f.puts++
		writeData(w, f.rules)
	default:
		writeError(w, http.StatusMethodNotAllowed, "global/invalid-parameters", "Method not allowed.")
	}
}

// parsePut reads a FirewallRulesPutRequest: {"data": [FirewallRule…]}, every field as the spec
// constrains it. The source network comes back with its mask, as Lambda assumes /32 for a
// bare address.
func parsePut(body io.Reader) ([]Rule, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	var req struct {
		Data *[]json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("invalid request body: %v", err)
	}
	if req.Data == nil {
		return nil, fmt.Errorf("data: field required")
	}
	rules := make([]Rule, 0, len(*req.Data))
	for i, m := range *req.Data {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(m, &fields); err != nil {
			return nil, fmt.Errorf("data[%d]: not an object", i)
		}
		for _, k := range []string{"protocol", "source_network", "description"} {
			if _, ok := fields[k]; !ok {
				return nil, fmt.Errorf("data[%d].%s: field required", i, k)
			}
		}
		var rule Rule
		d := json.NewDecoder(bytes.NewReader(m))
		d.DisallowUnknownFields()
		if err := d.Decode(&rule); err != nil {
			return nil, fmt.Errorf("data[%d]: %v", i, err)
		}
		switch rule.Protocol {
		case "tcp", "udp", "all":
			if len(rule.PortRange) != 2 {
				return nil, fmt.Errorf("data[%d].port_range: required for %s, as [min, max]", i, rule.Protocol)
			}
			lo, hi := rule.PortRange[0], rule.PortRange[1]
			if lo < 1 || hi > 65535 || lo > hi {
				return nil, fmt.Errorf("data[%d].port_range: %v is not a range of ports 1-65535", i, rule.PortRange)
			}
		case "icmp":
			if _, ok := fields["port_range"]; ok {
				return nil, fmt.Errorf("data[%d].port_range: not allowed for icmp", i)
			}
		default:
			return nil, fmt.Errorf("data[%d].protocol: %q is not one of tcp, udp, icmp, all", i, rule.Protocol)
		}
		if len(rule.Description) > 128 {
			return nil, fmt.Errorf("data[%d].description: longer than 128 characters", i)
		}
		network := rule.SourceNetwork
		if !strings.Contains(network, "/") {
			network += "/32"
		}
		ip, n, err := net.ParseCIDR(network)
		if err != nil || ip.To4() == nil {
			return nil, fmt.Errorf("data[%d].source_network: %q is not an IPv4 network", i, rule.SourceNetwork)
		}
		rule.SourceNetwork = n.String()
		rules = append(rules, rule)
	}
	return rules, nil
}

func writeData(w http.ResponseWriter, rules []Rule) {
	if rules == nil {
		rules = []Rule{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": rules})
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": message}})
}
