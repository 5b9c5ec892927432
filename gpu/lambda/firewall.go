package lambda

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// FirewallRule is one of the account's inbound firewall rules (FirewallRule in Lambda's
// OpenAPI document). PortRange is [min, max], absent for icmp.
type FirewallRule struct {
	Protocol      string `json:"protocol"`
	PortRange     []int  `json:"port_range,omitempty"`
	SourceNetwork string `json:"source_network"`
	Description   string `json:"description"`
}

// NeededFirewallRules are the inbound rules our VMs need, from anywhere: SSH for the
// customer, 80 for Caddy's HTTP-01 challenge (and its redirect to HTTPS), 443 for code-server
// behind Caddy. Jupyter is reached through Lambda's own proxy and needs none.
func NeededFirewallRules() []FirewallRule {
	rule := func(port int, what string) FirewallRule {
		return FirewallRule{Protocol: "tcp", PortRange: []int{port, port}, SourceNetwork: "0.0.0.0/0", Description: "gpubroker: " + what}
	}
	return []FirewallRule{rule(22, "SSH"), rule(80, "ACME HTTP-01 and redirect to HTTPS"), rule(443, "HTTPS (code-server behind Caddy)")}
}

// OpenFirewall makes the account's inbound rules let in what NeededFirewallRules lists. It
// adds only what no rule allows yet and writes the whole list back (PUT /firewall-rules
// replaces it), every other rule as it was read: a customer's or ops' rules are never removed.
// Nothing is written when nothing is missing, so running it again changes nothing; Lambda has
// no conditional write, and an edit made in its console between our read and our write would
// be lost, which writing rarely keeps unlikely. It returns the descriptions of the rules added.
func (c *Client) OpenFirewall(ctx context.Context) ([]string, error) {
	var have []FirewallRule
	if err := c.do(ctx, http.MethodGet, "/firewall-rules", nil, &have); err != nil {
		return nil, fmt.Errorf("lambda: read firewall rules: %w", err)
	}
	merged, added := mergeRules(have, NeededFirewallRules())
	if len(added) == 0 {
		return nil, nil
	}
	if err := c.do(ctx, http.MethodPut, "/firewall-rules", map[string]any{"data": merged}, nil); err != nil {
		return nil, fmt.Errorf("lambda: write firewall rules: %w", err)
	}
	return added, nil
}

// mergeRules returns have with every rule of need that no rule of have already allows
// appended, and the descriptions of those.
func mergeRules(have, need []FirewallRule) ([]FirewallRule, []string) {
	merged := append([]FirewallRule{}, have...)
	var added []string
	for _, n := range need {
		covered := false
		for _, h := range have {
			if allows(h, n) {
				covered = true
				break
			}
		}
		if !covered {
			merged = append(merged, n)
			added = append(added, n.Description)
		}
	}
	return merged, added
}

// allows reports whether rule h lets in everything rule n does: the same protocol (or all),
// every port of n's range, every source of n's network.
func allows(h, n FirewallRule) bool {
	if h.Protocol != n.Protocol && h.Protocol != "all" {
		return false
	}
	if len(n.PortRange) == 2 && (len(h.PortRange) != 2 || h.PortRange[0] > n.PortRange[0] || h.PortRange[1] < n.PortRange[1]) {
		return false
	}
	hn, nn := network(h.SourceNetwork), network(n.SourceNetwork)
	if hn == nil || nn == nil {
		return false
	}
	hOnes, _ := hn.Mask.Size()
	nOnes, _ := nn.Mask.Size()
	return hOnes <= nOnes && hn.Contains(nn.IP)
}

// network parses a source network; Lambda takes a bare address as /32.
func network(s string) *net.IPNet {
	if !strings.Contains(s, "/") {
		s += "/32"
	}
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil
	}
	return n
}
