package mail

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
)

func sampleData() Data {
	return Data{
		Name:      "Ada Lovelace",
		Email:     "ada@example.com",
		Link:      "https://gpubroker.example/activate/?token=tok_abc123",
		ExpiresIn: "24 hours",
		Pod: Pod{
			ID:          "pod_123",
			GPU:         "NVIDIA A100 80GB",
			Region:      "us-east",
			Hours:       4,
			Template:    "Data science",
			AmountCents: 5616,
			SSH:         "ssh -p 2222 root@203.0.113.7",
			JupyterURL:  "https://pod-123.example/lab",
			EndsAt:      time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC),
			DeployBy:    time.Date(2026, 2, 28, 9, 30, 0, 0, time.UTC),
		},
		Reason:    "No provider had capacity.",
		FromName:  "Bob Builder",
		FromEmail: "bob@corp.example",
		Company:   "Corp",
		Message:   "We need 64 GPUs.\nCan we talk?",
	}
}

func TestRenderEveryKind(t *testing.T) {
	t.Parallel()

	// Every gpubroker.Mail* kind must have templates: a kind the domain knows but this package
	// does not would only fail when that email is first sent.
	require.ElementsMatch(t, []string{
		gpubroker.MailActivation, gpubroker.MailLogin, gpubroker.MailPodReady, gpubroker.MailPodEnding, gpubroker.MailPodEnded,
		gpubroker.MailHoldReleased, gpubroker.MailRefunded, gpubroker.MailPodFailed, gpubroker.MailContact, gpubroker.MailPodWaiting,
		gpubroker.MailAccountDeletion,
	}, Kinds())

	d := sampleData()
	for _, kind := range Kinds() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			subject, text, html, err := Render(kind, d)
			require.NoError(t, err)
			require.NotEmpty(t, subject)
			require.NotContains(t, subject, "\n")
			require.NotContains(t, subject, "<no value>")

			require.True(t, strings.HasPrefix(text, "GPU Broker\n"), "text starts with the brand")
			require.Contains(t, text, d.Link)
			require.NotContains(t, text, "<no value>")

			require.True(t, strings.HasPrefix(html, "<!DOCTYPE html>"))
			require.Contains(t, html, `<html lang="en"`)
			require.Contains(t, html, "<title>"+subject+"</title>")
			require.Contains(t, html, "GPU Broker")
			require.Contains(t, html, `href="`+d.Link+`"`)
			require.NotContains(t, html, "<no value>")
			require.NotContains(t, html, "ZgotmplZ", "html/template rejected a value")
		})
	}
}

func TestRenderEscapesHTML(t *testing.T) {
	t.Parallel()

	const evil = `<script>alert("x")</script> & Co`
	d := sampleData()
	d.Name, d.FromName, d.Company, d.Message, d.Reason = evil, evil, evil, evil, evil
	d.Pod.GPU = evil

	for _, kind := range Kinds() {
		_, text, html, err := Render(kind, d)
		require.NoError(t, err, kind)
		require.NotContains(t, html, "<script>", kind)
		require.Contains(t, html, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co", kind)
		// The text part is plain text: escaping it would show entities to the reader.
		require.Contains(t, text, evil, kind)
	}
}

func TestRenderRejectsScriptLinks(t *testing.T) {
	t.Parallel()

	d := sampleData()
	d.Link = "javascript:alert(1)"
	_, _, html, err := Render(gpubroker.MailLogin, d)
	require.NoError(t, err)
	require.NotContains(t, html, `href="javascript:`)
}

func TestRenderSubjectIsOneLine(t *testing.T) {
	t.Parallel()

	d := sampleData()
	d.FromName = "Mallory\r\nBcc: victim@example.com"
	subject, _, _, err := Render(gpubroker.MailContact, d)
	require.NoError(t, err)
	require.Equal(t, "Contact request from Mallory Bcc: victim@example.com (Corp)", subject)
}

func TestRenderPodReady(t *testing.T) {
	t.Parallel()

	d := sampleData()
	subject, text, html, err := Render(gpubroker.MailPodReady, d)
	require.NoError(t, err)
	require.Equal(t, "Your NVIDIA A100 80GB pod is ready", subject)
	for _, part := range []string{text, html} {
		require.Contains(t, part, d.Pod.SSH)
		require.Contains(t, part, d.Pod.JupyterURL)
		require.Contains(t, part, "$56.16")
		require.Contains(t, part, "Sun 1 Mar 2026, 14:00 UTC")
		require.NotContains(t, part, "VS Code", "no code-server URL, no code-server line")
	}
}

func TestRenderWithoutName(t *testing.T) {
	t.Parallel()

	d := sampleData()
	d.Name = ""
	_, text, html, err := Render(gpubroker.MailActivation, d)
	require.NoError(t, err)
	require.Contains(t, text, "\nHi,\n")
	require.Contains(t, html, ">Hi,</p>")
}

func TestRenderUnknownKind(t *testing.T) {
	t.Parallel()

	_, _, _, err := Render("newsletter", sampleData())
	require.Error(t, err)
	require.True(t, errors.Is(err, ErrUnknownKind))
}

func TestMoney(t *testing.T) {
	t.Parallel()

	for cents, want := range map[int64]string{
		0:         "$0.00",
		5:         "$0.05",
		4900:      "$49.00",
		5616:      "$56.16",
		123450:    "$1,234.50",
		100000000: "$1,000,000.00",
		-2500:     "-$25.00",
	} {
		require.Equal(t, want, Money(cents), "Money(%d)", cents)
	}
}

// The link and the lifetime an email states come from the constants the store enforces.
func TestTokenLink(t *testing.T) {
	t.Parallel()
	link, in := TokenLink("https://gpubroker.example", gpubroker.TokenActivation, "tok")
	require.Equal(t, "https://gpubroker.example/activate/?token=tok", link)
	require.Equal(t, "24 hours", in)
	link, in = TokenLink("https://gpubroker.example", gpubroker.TokenLogin, "tok")
	require.Equal(t, "https://gpubroker.example/login/?token=tok", link)
	require.Equal(t, "30 minutes", in)
	link, in = TokenLink("https://gpubroker.example", gpubroker.TokenDeletion, "tok")
	require.Equal(t, "https://gpubroker.example/account/delete/?token=tok", link)
	require.Equal(t, "24 hours", in)
	require.Equal(t, "1 hour", humanDuration(time.Hour))
	require.Equal(t, "90 minutes", humanDuration(90*time.Minute))
}
