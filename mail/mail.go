// Package mail renders GPU Broker's emails. Every kind has one html/template and one
// text/template, embedded in the binary and sharing a small layout, so a message always
// carries both a plain-text part (for text-only clients, screen readers and spam filters) and an
// HTML part. Sending is someone else's job: see mail/ses and the outbox.
package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"gpubroker"
)

//go:embed templates/*.html templates/*.txt
var files embed.FS

// TokenLink returns the page an emailed one-time token of the purpose opens (the page POSTs
// it: a GET never spends a token) and how long it works, in words.
func TokenLink(publicURL, purpose, token string) (link, expiresIn string) {
	path := "/activate/?token="
	switch purpose {
	case gpubroker.TokenLogin:
		path = "/login/?token="
	case gpubroker.TokenDeletion:
		path = "/account/delete/?token="
	}
	return publicURL + path + token, humanDuration(gpubroker.TokenTTL(purpose))
}

// humanDuration says a whole number of hours or minutes in words: "24 hours", "30 minutes".
func humanDuration(d time.Duration) string {
	n, unit := int(d/time.Minute), "minute"
	if d%time.Hour == 0 {
		n, unit = int(d/time.Hour), "hour"
	}
	if n != 1 {
		unit += "s"
	}
	return strconv.Itoa(n) + " " + unit
}

// ErrUnknownKind is returned by Render for a kind that has no template.
var ErrUnknownKind = errors.New("unknown email kind")

// Data is everything the templates read. Each kind uses only some of the fields; the others
// stay empty.
type Data struct {
	// Name is the recipient's name ("Hi Ada,").
	Name string
	// Email is the recipient's address, shown in footers so a forwarded email says whom it was for.
	Email string
	// Link is the one call to action: the activation or sign-in URL, or the dashboard.
	Link string
	// ExpiresIn says how long Link works, in words ("24 hours", "15 minutes").
	ExpiresIn string
	// Pod describes the pod the email is about (pod_ready, pod_terminated, hold_released,
	// refunded, pod_failed).
	Pod Pod
	// Reason explains a failure, a released hold or a refund, in words for the customer.
	Reason string

	// FromName, FromEmail, Company and Message are what a visitor typed into the contact form
	// (kind contact, sent to sales).
	FromName  string
	FromEmail string
	Company   string
	Message   string
}

// Pod is the part of a pod and its order that emails show.
type Pod struct {
	ID string
	// GPU is the display name ("NVIDIA A100 80GB"), not the catalog id.
	GPU      string
	Region   string
	Hours    int
	Template string
	// AmountCents is what the order costs (or what was refunded), rendered with Money.
	AmountCents   int64
	SSH           string
	JupyterURL    string
	CodeServerURL string
	EndsAt        time.Time
	// StarterProject is where the template's starter project is on the pod.
	StarterProject string
	// NoSSHKey says the pod was launched without any of the customer's keys.
	NoSSHKey bool
	// EndedAt is when the pod actually ended (terminated); zero while it runs.
	EndedAt time.Time
	// DeployBy is the last moment to deploy a paid pod: its card hold is released then
	// (RentalClock.HoldReleaseAt, the pod JSON's deploy_by). Zero once deployed.
	DeployBy time.Time
}

// kinds lists the kinds with templates, in the order of the journey.
var kinds = []string{
	gpubroker.MailActivation,
	gpubroker.MailLogin,
	gpubroker.MailPodWaiting,
	gpubroker.MailPodReady,
	gpubroker.MailPodEnding,
	gpubroker.MailPodEnded,
	gpubroker.MailHoldReleased,
	gpubroker.MailRefunded,
	gpubroker.MailPodFailed,
	gpubroker.MailContact,
	gpubroker.MailAccountDeletion,
}

// Kinds returns the email kinds Render knows, e.g. for a preview page.
func Kinds() []string { return append([]string(nil), kinds...) }

// set is one kind's parsed templates. The text set defines "subject" and the text body; the HTML
// set defines the HTML body.
type set struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// sets is filled once at start-up and only read afterwards. The templates are embedded, so a
// parse error is a bug caught by the tests, not a runtime condition: panicking is right.
var sets = mustParse()

func mustParse() map[string]set {
	funcs := map[string]any{
		"money":  Money,
		"when":   when,
		"button": button,
	}
	m := make(map[string]set, len(kinds))
	for _, k := range kinds {
		t := texttemplate.Must(texttemplate.New(k).Funcs(funcs).
			ParseFS(files, "templates/layout.txt", "templates/"+k+".txt"))
		h := htmltemplate.Must(htmltemplate.New(k).Funcs(funcs).
			ParseFS(files, "templates/layout.html", "templates/"+k+".html"))
		m[k] = set{text: t, html: h}
	}
	return m
}

// view is what templates execute against: the caller's Data plus the rendered subject, which the
// HTML layout uses as the document title.
type view struct {
	Data
	Subject string
}

// Render renders the subject, plain-text body and HTML body of an email of the given kind (one
// of the gpubroker.Mail* constants). Values in d are escaped for HTML in the HTML body.
func Render(kind string, d Data) (subject, text, html string, err error) {
	s, ok := sets[kind]
	if !ok {
		return "", "", "", fmt.Errorf("error rendering email: %w: %q", ErrUnknownKind, kind)
	}
	var b bytes.Buffer
	if err := s.text.ExecuteTemplate(&b, "subject", d); err != nil {
		return "", "", "", fmt.Errorf("error rendering %s subject: %w", kind, err)
	}
	// A subject is one header line: folding whitespace here also means a name containing a
	// newline cannot smuggle anything into the message headers.
	subject = strings.Join(strings.Fields(b.String()), " ")
	v := view{Data: d, Subject: subject}

	b.Reset()
	if err := s.text.ExecuteTemplate(&b, "layout", v); err != nil {
		return "", "", "", fmt.Errorf("error rendering %s text: %w", kind, err)
	}
	text = strings.TrimSpace(b.String()) + "\n"

	b.Reset()
	if err := s.html.ExecuteTemplate(&b, "layout", v); err != nil {
		return "", "", "", fmt.Errorf("error rendering %s html: %w", kind, err)
	}
	return subject, text, b.String(), nil
}

// Money formats an amount in US cents as dollars: 4900 → "$49.00", 123450 → "$1,234.50".
func Money(cents int64) string {
	sign := ""
	u := uint64(cents)
	if cents < 0 {
		sign = "-"
		u = uint64(-(cents + 1)) + 1 // no overflow for math.MinInt64
	}
	whole := strconv.FormatUint(u/100, 10)
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return fmt.Sprintf("%s$%s.%02d", sign, b.String(), u%100)
}

// when formats a time for people in several time zones: unambiguous, always UTC.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("Mon 2 Jan 2006, 15:04 UTC")
}

// buttonArgs lets the HTML templates share one call-to-action button.
type buttonArgs struct {
	Href  string
	Label string
}

func button(href, label string) buttonArgs { return buttonArgs{Href: href, Label: label} }
