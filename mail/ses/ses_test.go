package ses

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/mail/ses/sesfake"
)

type testBundle struct {
	fake   *sesfake.SES
	client *sesv2.Client
	sleeps []time.Duration
	clock  time.Time
	opts   Options
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	b := &testBundle{fake: &sesfake.SES{}, clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	srv := httptest.NewServer(b.fake)
	t.Cleanup(srv.Close)
	// The client keeps the SDK's default (standard) retryer on purpose: Send must switch it off
	// per call, and the call counts below would be multiplied if it did not.
	b.client = sesv2.New(sesv2.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
	var mu sync.Mutex
	b.opts = Options{
		From:             "GPU Broker <no-reply@mail.gpubroker.example>",
		ConfigurationSet: "gpubroker-transactional",
		Backoff:          func(attempt int) time.Duration { return time.Duration(attempt) * time.Second },
		// Sleep advances a fake clock instead of waiting, so the limiter and the backoff are
		// observable and the tests take no time.
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			b.sleeps = append(b.sleeps, d)
			b.clock = b.clock.Add(d)
			return ctx.Err()
		},
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return b.clock
		},
	}
	return b
}

func message() gpubroker.Message {
	return gpubroker.Message{
		ID:      42,
		To:      "ada@example.com",
		Kind:    gpubroker.MailPodReady,
		Subject: "Your NVIDIA A100 80GB pod is ready",
		Text:    "GPU Broker\n\nYour pod is running.\n",
		HTML:    "<!DOCTYPE html><p>Your pod is running. Ünïcode ✓</p>",
	}
}

func TestSendCarriesBothPartsConfigSetAndTag(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := New(b.client, b.opts)

	id, err := s.Send(context.Background(), message())
	require.NoError(t, err)
	require.Equal(t, "ses-msg-1", id)

	sends := b.fake.Sends()
	require.Len(t, sends, 1)
	req := sends[0]
	m := message()
	require.Equal(t, b.opts.From, req.FromEmailAddress)
	require.Equal(t, []string{m.To}, req.Destination.ToAddresses)
	require.NotNil(t, req.Content.Simple)
	require.Equal(t, m.Subject, req.Content.Simple.Subject.Data)
	require.Equal(t, "UTF-8", req.Content.Simple.Subject.Charset)
	require.NotNil(t, req.Content.Simple.Body.Text)
	require.Equal(t, m.Text, req.Content.Simple.Body.Text.Data)
	require.Equal(t, "UTF-8", req.Content.Simple.Body.Text.Charset)
	require.NotNil(t, req.Content.Simple.Body.Html)
	require.Equal(t, m.HTML, req.Content.Simple.Body.Html.Data)
	require.Equal(t, "UTF-8", req.Content.Simple.Body.Html.Charset)
	require.NotNil(t, req.ConfigurationSetName)
	require.Equal(t, "gpubroker-transactional", *req.ConfigurationSetName)
	require.Len(t, req.EmailTags, 1)
	require.Equal(t, "kind", req.EmailTags[0].Name)
	require.Equal(t, "pod_ready", req.EmailTags[0].Value)
}

func TestSendWithoutConfigurationSet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.opts.ConfigurationSet = ""
	s := New(b.client, b.opts)

	_, err := s.Send(context.Background(), message())
	require.NoError(t, err)
	require.Nil(t, b.fake.Sends()[0].ConfigurationSetName)
}

func TestSendRetriesThrottling(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.Script(
		sesfake.Reply{Status: http.StatusTooManyRequests, Code: "TooManyRequestsException"},
		sesfake.Reply{Status: http.StatusTooManyRequests, Code: "TooManyRequestsException"},
	)
	s := New(b.client, b.opts)

	id, err := s.Send(context.Background(), message())
	require.NoError(t, err)
	require.Equal(t, "ses-msg-3", id)
	require.Equal(t, 3, b.fake.Calls())
	// Two backoffs (1 s, 2 s); the limiter never had to wait because the backoffs spaced the
	// attempts more than 1 s apart.
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second}, b.sleeps)
}

func TestSendThrottlingIsBounded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for range 10 {
		b.fake.Script(sesfake.Reply{Status: http.StatusBadRequest, Code: "LimitExceededException"})
	}
	b.opts.MaxRetries = 2
	s := New(b.client, b.opts)

	_, err := s.Send(context.Background(), message())
	require.Error(t, err)
	require.False(t, errors.Is(err, gpubroker.ErrPermanent), "throttling is retryable later")
	// 1 + MaxRetries: the SDK's retryer (3 attempts by default) would have made this 9.
	require.Equal(t, 3, b.fake.Calls())
}

func TestSendClassifiesErrors(t *testing.T) {
	t.Parallel()

	for code, wantPermanent := range map[string]bool{
		"MessageRejected":                    true,
		"MailFromDomainNotVerifiedException": true,
		"BadRequestException":                true,
		"AccountSuspendedException":          false,
		"SendingPausedException":             false,
		"NotFoundException":                  false,
		"InternalServiceErrorException":      false,
	} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			status := http.StatusBadRequest
			if code == "InternalServiceErrorException" {
				status = http.StatusInternalServerError
			}
			b.fake.Script(sesfake.Reply{Status: status, Code: code})
			s := New(b.client, b.opts)

			_, err := s.Send(context.Background(), message())
			require.Error(t, err)
			require.ErrorContains(t, err, code)
			require.Equal(t, wantPermanent, errors.Is(err, gpubroker.ErrPermanent))
			require.Equal(t, 1, b.fake.Calls(), "no retry inside Send")
		})
	}
}

func TestSendWithoutRecipientIsPermanent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := New(b.client, b.opts)

	m := message()
	m.To = " "
	_, err := s.Send(context.Background(), m)
	require.ErrorIs(t, err, gpubroker.ErrPermanent)
	require.Zero(t, b.fake.Calls())
}

func TestInitReadsMaxSendRate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.MaxSendRate = 2
	s := New(b.client, b.opts)
	require.Equal(t, DefaultRate, s.Rate())

	require.NoError(t, s.Init(context.Background()))
	require.Equal(t, 2.0, s.Rate())

	for range 3 {
		_, err := s.Send(context.Background(), message())
		require.NoError(t, err)
	}
	// At 2/s the first send goes at once and the next two each wait half a second.
	require.Equal(t, []time.Duration{500 * time.Millisecond, 500 * time.Millisecond}, b.sleeps)
}

func TestInitFailureKeepsDefaultRate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.AccountError = "AccessDeniedException"
	s := New(b.client, b.opts)

	err := s.Init(context.Background())
	require.ErrorContains(t, err, "AccessDeniedException")
	require.Equal(t, DefaultRate, s.Rate())

	_, err = s.Send(context.Background(), message())
	require.NoError(t, err, "the sender stays usable")
}

func TestSendContextCancelledWhileWaiting(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.opts.Sleep = nil // real sleeps: the limiter must give up when the context ends
	b.opts.Now = nil
	b.opts.MaxRate = 0.001
	s := New(b.client, b.opts)

	_, err := s.Send(context.Background(), message()) // takes the first slot
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = s.Send(ctx, message())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, 1, b.fake.Calls())
}

func TestTagValue(t *testing.T) {
	t.Parallel()

	require.Equal(t, "pod_ready", tagValue("pod_ready"))
	require.Equal(t, "hold-released_2", tagValue("hold-released.2"))
	require.Equal(t, "unknown", tagValue(""))
	require.Equal(t, "a_b___", tagValue("a b✓"))
}

// SES takes 7-bit addresses only (no SMTPUTF8): a domain must be in its IDNA ASCII form, and we
// store addresses as typed. A full-width spelling is sent to its NFKC form, a Unicode domain in
// punycode, and a local part that stays non-ASCII is a permanent failure, never sent.
func TestSendAddressesInASCII(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := New(b.client, b.opts)
	for typed, sent := range map[string]string{
		"ｃd@ｅxample.com":      "cd@example.com",
		"user@bücher.example": "user@xn--bcher-kva.example",
		"ada@Example.com":     "ada@example.com",
	} {
		m := message()
		m.To = typed
		_, err := s.Send(context.Background(), m)
		require.NoError(t, err, typed)
		require.Len(t, b.fake.SentTo(sent), 1, "%s is sent to %s", typed, sent)
	}
	m := message()
	m.To = "josé@example.com"
	calls := b.fake.Calls()
	_, err := s.Send(context.Background(), m)
	require.ErrorIs(t, err, gpubroker.ErrPermanent)
	require.Equal(t, calls, b.fake.Calls())
}

// A new SES account is in the sandbox: it refuses every recipient that is not a verified
// identity with MessageRejected, the code it also gives a message it will never send. That is
// the account's state, not the message's (issue 21.5: activation emails were dropped for good):
// the error is not permanent, it says it is the sandbox, and the outbox job retries it. Once the
// address is verified (or the account has production access) the same message goes.
func TestSendSandboxRejectionIsNotPermanent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.SetSandbox(true)
	s := New(b.client, b.opts)

	_, err := s.Send(context.Background(), message())
	require.Error(t, err)
	require.False(t, errors.Is(err, gpubroker.ErrPermanent), "a sandbox rejection is not the message's fault: %v", err)
	var sb interface{ Sandbox() bool }
	require.True(t, errors.As(err, &sb) && sb.Sandbox(), "the error says it is the sandbox: %v", err)
	require.ErrorContains(t, err, "MessageRejected")
	require.ErrorContains(t, err, "Email address is not verified. The following identities failed the check in region US-EAST-1: ada@example.com")
	require.Equal(t, 1, b.fake.Calls(), "no retry inside Send: the outbox job retries it for hours")

	b.fake.Verify("example.com")
	id, err := s.Send(context.Background(), message())
	require.NoError(t, err)
	require.NotEmpty(t, id)
}

// "Email address is not verified" also names a sender (From) that is not verified: a deployment
// mistake that affects every message and is fixed by verifying the domain, so the message waits
// as for the other account problems; that is not the sandbox. A list SES cut short (or none)
// that does not show the sender is taken as the sandbox: retried, never dropped.
func TestSendUnverifiedSender(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		msg     string
		sandbox bool
	}{
		"sender":    {"Email address is not verified. The following identities failed the check in region EU-WEST-1: GPU Broker <no-reply@mail.gpubroker.example>, no-reply@mail.gpubroker.example", false},
		"both":      {"Email address is not verified. The following identities failed the check in region US-EAST-1: no-reply@mail.gpubroker.example, ada@example.com", true},
		"truncated": {"Email address is not verified. The following identities failed the check in region US-EAST-1: bob@example.org, carol@example.org, ...", true},
		"no list":   {"Email address is not verified.", true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.fake.Script(sesfake.Reply{Status: http.StatusBadRequest, Code: "MessageRejected", Message: tc.msg})
			_, err := New(b.client, b.opts).Send(context.Background(), message())
			require.Error(t, err)
			require.False(t, errors.Is(err, gpubroker.ErrPermanent), "%v", err)
			var sb interface{ Sandbox() bool }
			require.Equal(t, tc.sandbox, errors.As(err, &sb) && sb.Sandbox(), "%v", err)
		})
	}
}

// The stand-in refuses as SES does, on the wire: 400, the code in X-Amzn-ErrorType, the message
// naming the recipients and the request's region, as SES words it.
func TestFakeSandboxAnswersAsSES(t *testing.T) {
	t.Parallel()
	fake := &sesfake.SES{}
	fake.SetSandbox(true)
	fake.Verify("verified@example.com")
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)

	send := func(to ...string) (*http.Response, string) {
		body, _ := json.Marshal(map[string]any{"FromEmailAddress": "no-reply@mail.gpubroker.example", "Destination": map[string]any{"ToAddresses": to}})
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v2/email/outbound-emails", bytes.NewReader(body))
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261207/eu-west-1/ses/aws4_request, SignedHeaders=host, Signature=0")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := send("ada@example.com", "verified@example.com", "bob@example.org")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, "MessageRejected", resp.Header.Get("X-Amzn-ErrorType"))
	require.JSONEq(t, `{"message":"Email address is not verified. The following identities failed the check in region EU-WEST-1: ada@example.com, bob@example.org"}`, body)

	resp, _ = send("verified@example.com", "success@simulator.amazonses.com")
	require.Equal(t, http.StatusOK, resp.StatusCode, "verified addresses and the mailbox simulator pass")

	var acct struct {
		ProductionAccessEnabled bool
		SendQuota               struct{ MaxSendRate, Max24HourSend float64 }
	}
	resp, err := http.Get(srv.URL + "/v2/email/account")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&acct))
	require.False(t, acct.ProductionAccessEnabled)
	require.Equal(t, 1.0, acct.SendQuota.MaxSendRate)
	require.Equal(t, 200.0, acct.SendQuota.Max24HourSend)
}
