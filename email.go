package gpubroker

import (
	"context"
	"errors"
	"net/mail"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Email kinds. Each has a template in package mail.
const (
	MailActivation   = "activation"
	MailLogin        = "login"
	MailPodReady     = "pod_ready"
	MailPodEnded     = "pod_terminated"
	MailHoldReleased = "hold_released"
	MailRefunded     = "refunded"
	MailPodFailed    = "pod_failed"
	MailPodEnding    = "pod_ending" // an hour before a pod longer than an hour ends
	MailContact      = "contact"
	// MailAccountDeletion carries the link that confirms an account's deletion.
	MailAccountDeletion = "account_deletion"
	// MailPodWaiting is the email a returning customer gets when a new paid order lands on
	// their existing, active account: the pod is waiting, deploy it by its deadline. (A new
	// account gets its activation email instead.)
	MailPodWaiting = "pod_waiting"
)

// DeletedEmail is the address a deleted account and its orders are left with: unique, in the
// reserved .invalid domain, and nobody's.
func DeletedEmail(accountID string) string { return "deleted-" + accountID + "@invalid" }

// Undeliverable reports an address in the reserved .invalid domain, such as a deleted
// account's (DeletedEmail): nothing is ever sent to it.
func Undeliverable(addr string) bool {
	return strings.HasSuffix(addr, ".invalid") || strings.HasSuffix(addr, "@invalid")
}

// EmailStatus is where an outbox row stands: pending until its send job delivers it (sent),
// finds the address suppressed (bounced or complained before), or the provider refuses it for
// good (failed). A row that is no longer pending is never sent again.
type EmailStatus string

// Email statuses (stored as text).
const (
	EmailPending    EmailStatus = "pending"
	EmailSent       EmailStatus = "sent"
	EmailSuppressed EmailStatus = "suppressed"
	EmailFailed     EmailStatus = "failed"
)

var emailTransitions = map[EmailStatus][]EmailStatus{EmailPending: {EmailSent, EmailSuppressed, EmailFailed}}

// CanMoveTo reports whether an outbox row may move from s to to.
func (s EmailStatus) CanMoveTo(to EmailStatus) bool { return allowed(emailTransitions[s], to) }

// Message is a rendered email, as stored in the outbox and handed to a Sender.
type Message struct {
	ID      int64
	To      string
	Kind    string
	Subject string
	Text    string
	HTML    string
}

// ErrPermanent is wrapped by a Sender when the message can never be delivered (rejected,
// bad address): the outbox row records it and the job does not retry.
var ErrPermanent = errors.New("permanent email failure")

// Sender delivers a rendered email and returns the provider's message id.
type Sender interface {
	Send(ctx context.Context, m Message) (messageID string, err error)
}

// NormalizeEmail trims and lower-cases an email address, the form accounts are keyed by and
// orders store: the address as typed, Unicode left as it is (ｃd@ｅxample.com stays full-width),
// so typing the same string again finds the same account. Only Mailbox folds spellings.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Mailbox returns the mailbox an address delivers to, the key of the one-free-trial rule: the
// address in Unicode NFKC form, lower-cased, its domain in IDNA ASCII form (bücher.example is
// xn--bcher-kva.example), without its "+tag", and for Gmail (gmail.com, googlemail.com) without
// dots and at gmail.com, so a.1+x@gmail.com, A1@googlemail.com, ａ1@ｇmail.com and a1@gmail.com
// are one mailbox. Migration 003 applies the ASCII rules in SQL to existing claims.
func Mailbox(email string) string {
	email = strings.ToLower(norm.NFKC.String(NormalizeEmail(email)))
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return email
	}
	local, domain := email[:at], email[at+1:]
	if ascii, err := idna.Lookup.ToASCII(domain); err == nil {
		domain = strings.ToLower(ascii)
	}
	if i := strings.IndexByte(local, '+'); i >= 0 {
		local = local[:i]
	}
	if domain == "gmail.com" || domain == "googlemail.com" {
		local, domain = strings.ReplaceAll(local, ".", ""), "gmail.com"
	}
	return local + "@" + domain
}

// ValidEmail reports whether s is a plain address (no display name) at a domain name, in the
// form typed and in its Unicode NFKC form (the form Mailbox reads). It refuses
//   - IP literals in any form (ab@[169.254.169.254], full-width brackets, a@127.0.0.1): the
//     domain must be a name whose top-level label is letters (or an IDNA A-label), which no
//     IPv4 address in any notation is, and which IDNA (lookup profile) accepts;
//   - invisible characters (controls, format characters such as zero-width spaces, soft
//     hyphens or bidi overrides), with which one address looks like another;
//   - addresses whose NFKC form is no plain address (a＠b@gmail.com reads a@b@gmail.com).
//
// Full-width and other compatibility forms of a valid address are valid: Mailbox folds them.
func ValidEmail(s string) bool {
	if len(s) > 254 || s == "" || !utf8.ValidString(s) || !plainAddress(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) {
			return false
		}
	}
	n := norm.NFKC.String(s)
	if !plainAddress(n) {
		return false
	}
	domain := n[strings.LastIndexByte(n, '@')+1:]
	if strings.ContainsAny(domain, "[]:") {
		return false
	}
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return false
	}
	ascii = strings.ToLower(ascii)
	if _, err := netip.ParseAddr(ascii); err == nil {
		return false
	}
	dot := strings.LastIndexByte(ascii, '.')
	return dot > 0 && topLevelLabel(ascii[dot+1:])
}

// plainAddress reports whether s parses as an address and is nothing but that address.
func plainAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s
}

// topLevelLabel reports whether l can be a top-level domain: ASCII letters, or an IDNA
// A-label (xn--…). Numbers (127.0.0.1's "1", 1.2.3.0x7f's "0x7f") are not.
func topLevelLabel(l string) bool {
	if rest, ok := strings.CutPrefix(l, "xn--"); ok {
		return rest != "" && strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
	}
	return l != "" && strings.Trim(l, "abcdefghijklmnopqrstuvwxyz") == ""
}

// Kinds of email feedback (SES bounce and complaint notifications).
const (
	FeedbackBounce    = "bounce"
	FeedbackComplaint = "complaint"
)

// Bounce types, as SES names them.
const (
	BouncePermanent    = "Permanent"
	BounceTransient    = "Transient"
	BounceUndetermined = "Undetermined"
)

// EmailFeedback is one bounce or complaint about one sent message (package feedback parses
// them from SES; the store records them and suppresses the addresses).
type EmailFeedback struct {
	// ID is SES's feedbackId. With a recipient it identifies the feedback, so a redelivered
	// message is recognised.
	ID string
	// Kind is FeedbackBounce or FeedbackComplaint.
	Kind string
	// BounceType is BouncePermanent, BounceTransient or BounceUndetermined; empty for complaints.
	BounceType string
	// Recipients are the bounced or complaining addresses, normalized with NormalizeEmail (the
	// form accounts are keyed by).
	Recipients []string
	// MessageID is SES's id of the message the feedback is about: the id Sender.Send returned.
	MessageID string
	// At is when the bounce or complaint happened, per SES.
	At time.Time
}

// Suppresses reports whether the recipients should get no more email: after a complaint or a
// permanent bounce. Transient and undetermined bounces are only recorded.
func (f EmailFeedback) Suppresses() bool {
	return f.Kind == FeedbackComplaint || (f.Kind == FeedbackBounce && f.BounceType == BouncePermanent)
}
