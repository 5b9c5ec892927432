// Package sesfake is a local SES v2 endpoint the real SDK client is pointed at (tests, make
// chaos's counting sender), beside the adapter it stands in for, so every test speaks the same
// protocol and a fix to the fake reaches every test.
package sesfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// SendEmail is the JSON body of SES v2 SendEmail (POST /v2/email/outbound-emails).
type SendEmail struct {
	// At is when the fake received it (not part of SES's JSON).
	At               time.Time `json:"-"`
	FromEmailAddress string
	Destination      struct{ ToAddresses []string }
	Content          struct {
		Simple *struct {
			Subject struct{ Data, Charset string }
			Body    struct {
				Text *struct{ Data, Charset string }
				Html *struct{ Data, Charset string }
			}
		}
	}
	ConfigurationSetName *string
	EmailTags            []struct{ Name, Value string }
}

// Reply is one scripted answer to SendEmail: a status and, for errors, the SES error code and
// message ("scripted <code>" when empty).
type Reply struct {
	Status  int
	Code    string
	Message string
}

// SES speaks the slice of the SES v2 REST-JSON protocol the sender uses (GetAccount and
// SendEmail) and records every SendEmail. Errors carry their code in X-Amzn-ErrorType, as SES
// does, which is what the SDK's restjson1 decoder reads. Message ids are ses-msg-1, ses-msg-2….
//
// In the sandbox (SetSandbox), as a new SES account is, a SendEmail to a recipient that is not
// a verified identity (Verify: an address or a whole domain) is refused as SES refuses it: 400,
// MessageRejected, "Email address is not verified. The following identities failed the check
// in region US-EAST-1: <recipients>"; the mailbox simulator's addresses always pass, and
// GetAccount reports ProductionAccessEnabled false.
type SES struct {
	// MaxSendRate is what GetAccount reports; zero means 14 (SES's usual production rate).
	MaxSendRate float64
	// AccountError, when set, makes GetAccount fail with this code (403).
	AccountError string

	mu       sync.Mutex
	sends    []SendEmail
	replies  []Reply
	sandbox  bool
	verified map[string]bool
}

// SetSandbox puts the account in the SES sandbox (true) or gives it production access (false,
// the default).
func (f *SES) SetSandbox(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sandbox = on
}

// Verify makes identity (an address, or a domain for all its addresses) verified: the sandbox
// delivers to it.
func (f *SES) Verify(identity string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.verified == nil {
		f.verified = map[string]bool{}
	}
	f.verified[strings.ToLower(identity)] = true
}

// unverified returns the recipients the sandbox refuses, in order.
func (f *SES) unverified(to []string) []string {
	var out []string
	for _, addr := range to {
		a := strings.ToLower(addr)
		domain := a[strings.LastIndexByte(a, '@')+1:]
		if f.verified[a] || f.verified[domain] || domain == "simulator.amazonses.com" {
			continue
		}
		out = append(out, addr)
	}
	return out
}

// credentialRegion is the region of a SigV4 Authorization header's credential scope.
var credentialRegion = regexp.MustCompile(`Credential=[^/]+/[0-9]{8}/([a-z0-9-]+)/`)

// Script queues answers for the next SendEmail calls, one each; when none is left, success.
func (f *SES) Script(replies ...Reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies = append(f.replies, replies...)
}

// Sends returns every SendEmail request so far, failed ones included.
func (f *SES) Sends() []SendEmail {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]SendEmail(nil), f.sends...)
}

// Calls is how many SendEmail requests came.
func (f *SES) Calls() int { return len(f.Sends()) }

// SentTo returns the SendEmail requests addressed to addr.
func (f *SES) SentTo(addr string) []SendEmail {
	var out []SendEmail
	for _, s := range f.Sends() {
		for _, to := range s.Destination.ToAddresses {
			if to == addr {
				out = append(out, s)
			}
		}
	}
	return out
}

// ServeHTTP implements http.Handler.
func (f *SES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v2/email/outbound-emails":
		req := SendEmail{At: time.Now()}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			sesError(w, http.StatusBadRequest, "BadRequestException", err.Error())
			return
		}
		// As SES: no SMTPUTF8, so an address must be 7-bit (a domain in punycode).
		for _, to := range req.Destination.ToAddresses {
			for i := 0; i < len(to); i++ {
				if to[i] >= 0x80 {
					f.sends = append(f.sends, req)
					sesError(w, http.StatusBadRequest, "BadRequestException", "Domain contains illegal character")
					return
				}
			}
		}
		f.sends = append(f.sends, req)
		if len(f.replies) > 0 {
			rep := f.replies[0]
			f.replies = f.replies[1:]
			if rep.Status != http.StatusOK {
				msg := rep.Message
				if msg == "" {
					msg = "scripted " + rep.Code
				}
				sesError(w, rep.Status, rep.Code, msg)
				return
			}
		}
		if failed := f.unverified(req.Destination.ToAddresses); f.sandbox && len(failed) > 0 {
			region := "us-east-1"
			if m := credentialRegion.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
				region = m[1]
			}
			sesError(w, http.StatusBadRequest, "MessageRejected", "Email address is not verified. The following identities failed the check in region "+
				strings.ToUpper(region)+": "+strings.Join(failed, ", "))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"MessageId": fmt.Sprintf("ses-msg-%d", len(f.sends))})
	case r.Method == http.MethodGet && r.URL.Path == "/v2/email/account":
		if f.AccountError != "" {
			sesError(w, http.StatusForbidden, f.AccountError, "scripted")
			return
		}
		// The sandbox's quota is 200 messages a day at 1 a second.
		rate, perDay := f.MaxSendRate, 50000.0
		if f.sandbox {
			perDay = 200
		}
		if rate == 0 {
			rate = 14
			if f.sandbox {
				rate = 1
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"SendQuota":               map[string]float64{"Max24HourSend": perDay, "MaxSendRate": rate, "SentLast24Hours": 12},
			"SendingEnabled":          true,
			"ProductionAccessEnabled": !f.sandbox,
			"EnforcementStatus":       "HEALTHY",
		})
	default:
		sesError(w, http.StatusNotFound, "NotFoundException", r.Method+" "+r.URL.Path)
	}
}

func sesError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
