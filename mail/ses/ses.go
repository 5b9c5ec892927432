// Package ses delivers GPU Broker's emails through Amazon SES v2. It implements
// gpubroker.Sender: it sends one rendered message with both a text and an HTML part, keeps the
// process under the account's maximum send rate, retries throttling inside the call, and tells
// the outbox which failures are permanent (never retry), which are worth retrying later, and
// which are the SES sandbox refusing an unverified recipient (SandboxError).
package ses

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"

	"gpubroker"
	"gpubroker/internal/pace"
)

// DefaultRate is the send rate, in messages per second, used until Init has read the account's
// quota (or when it cannot): it is the SES sandbox rate, so it is safe for every account.
const DefaultRate = 1.0

// DefaultMaxRetries is how many times a throttled send is retried within one Send call.
const DefaultMaxRetries = 4

// Options configures a Sender.
type Options struct {
	// From is the sender address, optionally with a display name:
	// "GPU Broker <no-reply@mail.example.com>". Its domain must be a verified SES identity.
	From string
	// ConfigurationSet is the SES configuration set whose event destination publishes bounces and
	// complaints (see package feedback). Empty sends without one.
	ConfigurationSet string
	// MaxRetries bounds the retries of a throttled send within one Send call; 0 means
	// DefaultMaxRetries, a negative value disables them. After that the error is returned as
	// retryable and the outbox job tries again later.
	MaxRetries int
	// MaxRate, when positive, is the send rate in messages per second and Init does not ask SES.
	MaxRate float64
	// Backoff returns the wait before retry number attempt (1, 2, …). Nil uses an exponential
	// backoff from 250 ms, capped at 8 s, with jitter.
	Backoff func(attempt int) time.Duration
	// Sleep waits for d or until ctx is done. Nil uses a timer; tests replace it to run instantly.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now returns the current time for the rate limiter. Nil uses time.Now.
	Now func() time.Time
	// Logger receives retries and the account state read by Init. Nil discards.
	Logger *slog.Logger
}

// Sender sends email with SES v2. It is safe for concurrent use.
type Sender struct {
	client  *sesv2.Client
	opts    Options
	limiter *pace.Pacer
}

var _ gpubroker.Sender = (*Sender)(nil)

// New returns a Sender using client. Call Init before sending to pick up the account's rate.
func New(client *sesv2.Client, opts Options) *Sender {
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	if opts.Backoff == nil {
		opts.Backoff = backoff
	}
	if opts.Sleep == nil {
		opts.Sleep = pace.Sleep
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	rate := DefaultRate
	if opts.MaxRate > 0 {
		rate = opts.MaxRate
	}
	return &Sender{
		client:  client,
		opts:    opts,
		limiter: pace.New(interval(rate), opts.Now, opts.Sleep),
	}
}

// Init reads the account's sending quota (GetAccount) and limits this Sender to its
// MaxSendRate. When the call fails the Sender stays usable at DefaultRate and the error is
// returned for the caller to log: a missing ses:GetAccount permission should not stop email.
func (s *Sender) Init(ctx context.Context) error {
	if s.opts.MaxRate > 0 {
		return nil
	}
	out, err := s.client.GetAccount(ctx, &sesv2.GetAccountInput{})
	if err != nil {
		return fmt.Errorf("error reading SES account, sending at %v/s: %w", DefaultRate, err)
	}
	if !out.SendingEnabled {
		s.opts.Logger.WarnContext(ctx, "SES sending is disabled for this account; sends will fail until it is enabled",
			slog.String("enforcement_status", aws.ToString(out.EnforcementStatus)))
	}
	if !out.ProductionAccessEnabled {
		s.opts.Logger.WarnContext(ctx, "SES account is in the sandbox: only verified recipients receive email")
	}
	if out.SendQuota != nil && out.SendQuota.MaxSendRate > 0 {
		s.limiter.SetInterval(interval(out.SendQuota.MaxSendRate))
		s.opts.Logger.InfoContext(ctx, "SES send rate", slog.Float64("max_send_rate", out.SendQuota.MaxSendRate),
			slog.Float64("max_24_hour_send", out.SendQuota.Max24HourSend))
	}
	return nil
}

// asciiAddress is the address SES can send to. SES has no SMTPUTF8: every address must be 7-bit,
// a domain in its IDNA ASCII form. Addresses are stored as typed (gpubroker.ValidEmail accepts
// full-width spellings), so the NFKC form is sent, its domain in punycode; a local part that is
// still not ASCII cannot be sent at all.
func asciiAddress(addr string) (string, error) {
	addr = norm.NFKC.String(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", fmt.Errorf("no @ in the address %q", addr)
	}
	local, domain := addr[:at], addr[at+1:]
	for i := 0; i < len(local); i++ {
		if local[i] >= 0x80 {
			return "", fmt.Errorf("SES cannot send to a local part that is not ASCII: %q", local)
		}
	}
	domain, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return "", fmt.Errorf("the domain of %q has no ASCII form: %w", addr, err)
	}
	return local + "@" + domain, nil
}

// Rate returns the send rate the Sender keeps to, in messages per second.
func (s *Sender) Rate() float64 {
	return float64(time.Second) / float64(s.limiter.Interval())
}

// Send sends m to m.To and returns the SES message id. Errors wrapping gpubroker.ErrPermanent
// mean the message can never be delivered as it is; any other error is worth retrying later,
// among them a *SandboxError: the account is in the SES sandbox and the recipient is not
// verified, which lasts until someone requests production access.
func (s *Sender) Send(ctx context.Context, m gpubroker.Message) (string, error) {
	if strings.TrimSpace(m.To) == "" {
		return "", fmt.Errorf("error sending email %d: %w: no recipient", m.ID, gpubroker.ErrPermanent)
	}
	to, err := asciiAddress(m.To)
	if err != nil {
		return "", fmt.Errorf("error sending email %d: %w: %w", m.ID, gpubroker.ErrPermanent, err)
	}
	in := &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(s.opts.From),
		Destination:      &types.Destination{ToAddresses: []string{to}},
		Content: &types.EmailContent{
			Simple: &types.Message{
				Subject: utf8(m.Subject),
				Body:    &types.Body{Text: utf8(m.Text), Html: utf8(m.HTML)},
			},
		},
		// The tag lets SES events (and feedback) be grouped by kind of email.
		EmailTags: []types.MessageTag{{Name: aws.String("kind"), Value: aws.String(tagValue(m.Kind))}},
	}
	if s.opts.ConfigurationSet != "" {
		in.ConfigurationSetName = aws.String(s.opts.ConfigurationSet)
	}

	for attempt := 0; ; attempt++ {
		if err := s.limiter.Wait(ctx); err != nil {
			return "", fmt.Errorf("error waiting to send email %d: %w", m.ID, err)
		}
		out, err := s.client.SendEmail(ctx, in, withoutSDKRetries)
		if err == nil {
			return aws.ToString(out.MessageId), nil
		}
		switch classify(err) {
		case permanent:
			return "", fmt.Errorf("error sending email %d: %w: %w", m.ID, gpubroker.ErrPermanent, err)
		case notVerified:
			if sandboxed(err, to, s.opts.From) {
				return "", fmt.Errorf("error sending email %d: %w", m.ID, &SandboxError{Err: err})
			}
			// Only the sender is not verified: a deployment mistake, fixed by verifying its domain.
			return "", fmt.Errorf("error sending email %d: the sender is not a verified SES identity: %w", m.ID, err)
		case throttled:
			if attempt >= s.opts.MaxRetries {
				return "", fmt.Errorf("error sending email %d: still throttled after %d attempts: %w", m.ID, attempt+1, err)
			}
			d := s.opts.Backoff(attempt + 1)
			s.opts.Logger.InfoContext(ctx, "SES throttled, retrying", slog.Int64("message", m.ID),
				slog.Int("attempt", attempt+1), slog.Duration("wait", d), slog.String("error", err.Error()))
			if err := s.opts.Sleep(ctx, d); err != nil {
				return "", fmt.Errorf("error sending email %d: throttled, then %w", m.ID, err)
			}
		default:
			return "", fmt.Errorf("error sending email %d: %w", m.ID, err)
		}
	}
}

// withoutSDKRetries turns off the SDK's own retryer for SendEmail. Its standard retryer would
// also retry TooManyRequestsException and LimitExceededException (3 attempts, backoff up to
// 20 s), multiplying our attempts, and its retries would bypass the rate limiter, which is
// exactly wrong when SES says we are too fast. With one owner of retries, every attempt waits
// its turn in the limiter and the worst case of one Send is known. Other transient errors
// (5xx, network) come back at once as retryable and the outbox job retries them with its own
// backoff. Tests keep the SDK's default retryer on the client, so they prove this option works.
func withoutSDKRetries(o *sesv2.Options) { o.Retryer = aws.NopRetryer{} }

// SandboxError is SES refusing a recipient that is not a verified identity while the account
// is in the SES sandbox (MessageRejected, "Email address is not verified…"). It is not
// permanent: it is the state of the account, lifted by production access (or by verifying the
// address), not of the message. Sandbox reports it to the outbox job without importing this
// package.
type SandboxError struct {
	Err error // SES's answer
}

func (e *SandboxError) Error() string {
	return "SES sandbox: the recipient is not a verified identity: " + e.Err.Error()
}

func (e *SandboxError) Unwrap() error { return e.Err }

// Sandbox reports that the recipient was refused because the account is in the SES sandbox.
func (e *SandboxError) Sandbox() bool { return true }

type class int

const (
	retryLater class = iota
	throttled
	permanent
	notVerified // "Email address is not verified": the sandbox's recipients or our sender
)

// notVerifiedMessage starts SES's answer (MessageRejected) when an identity of the message is
// not verified: "Email address is not verified. The following identities failed the check in
// region US-EAST-1: <identities>" (ending in "..." when SES cannot list them all).
const notVerifiedMessage = "Email address is not verified"

// sandboxed tells whether a not-verified rejection is the sandbox refusing the recipient, to,
// rather than our sender, from, not being verified: it is unless SES lists the sender and not
// the recipient. A list that is cut short or missing counts as the sandbox: retried, not dropped.
func sandboxed(err error, to, from string) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	_, listed, ok := strings.Cut(apiErr.ErrorMessage(), "failed the check in region ")
	if !ok {
		return true
	}
	_, listed, _ = strings.Cut(listed, ": ")
	listed = strings.ToLower(listed)
	if strings.Contains(listed, strings.ToLower(to)) {
		return true
	}
	if at := strings.LastIndexByte(from, '<'); at >= 0 {
		from = strings.TrimSuffix(from[at+1:], ">")
	}
	return !strings.Contains(listed, strings.ToLower(strings.TrimSpace(from)))
}

// classify sorts an SES error. It goes by error code rather than Go type so it also covers codes
// the SDK does not model.
func classify(err error) class {
	var invalid smithy.InvalidParamsError
	if errors.As(err, &invalid) {
		// Client-side validation: the same input fails the same way every time.
		return permanent
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return retryLater // network errors, cancelled contexts
	}
	switch apiErr.ErrorCode() {
	case "TooManyRequestsException", "LimitExceededException", "Throttling", "ThrottlingException":
		return throttled
	case "MessageRejected": // content SES refuses to send (e.g. a virus) or a blocked address…
		if strings.HasPrefix(apiErr.ErrorMessage(), notVerifiedMessage) {
			return notVerified // …but not an identity that is not verified yet
		}
		return permanent
	case "MailFromDomainNotVerifiedException", // as the message is built, it will never pass
		"BadRequestException": // malformed address or content
		return permanent
	case "AccountSuspendedException", "SendingPausedException":
		// Not permanent: these are the state of the account or configuration set, not of this
		// message. Marking every queued email undeliverable while ops get sending re-enabled would
		// lose them all; retried later, they go out once it is lifted.
		return retryLater
	case "NotFoundException":
		// A missing configuration set (or identity) is a deployment mistake that affects every
		// message equally and is fixed by a deploy, so the messages should wait, not be dropped.
		return retryLater
	}
	return retryLater
}

// tagValue makes a kind usable as an SES tag value, which allows only [A-Za-z0-9_-] and at most
// 256 characters: anything else would make SES reject the whole message.
func tagValue(kind string) string {
	if kind == "" {
		return "unknown"
	}
	b := []byte(kind)
	if len(b) > 256 {
		b = b[:256]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

func utf8(s string) *types.Content {
	return &types.Content{Data: aws.String(s), Charset: aws.String("UTF-8")}
}

func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << min(attempt-1, 5) // 250 ms, 500 ms, … 8 s
	// Half fixed, half random: processes throttled together do not retry together.
	return d/2 + rand.N(d/2+1)
}

func interval(rate float64) time.Duration {
	return time.Duration(float64(time.Second) / rate)
}
