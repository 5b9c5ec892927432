package ses

import (
	"context"
	"encoding/json"
	"errors"
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
)

// sendRequest is the JSON body of SES v2 SendEmail (POST /v2/email/outbound-emails).
type sendRequest struct {
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

// reply is one scripted answer of the fake: a status and, for errors, the SES error code.
type reply struct {
	status int
	code   string
}

// fakeSES speaks the slice of the SES v2 REST-JSON protocol the Sender uses. Errors carry their
// code in X-Amzn-ErrorType, as SES does, which is what the SDK's restjson1 decoder reads.
type fakeSES struct {
	mu       sync.Mutex
	sends    []sendRequest
	replies  []reply // consumed one per SendEmail; when empty, success
	rate     float64
	acctCode string // when set, GetAccount fails with this code (403)
}

func (f *fakeSES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v2/email/outbound-emails":
		var req sendRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "BadRequestException", err.Error())
			return
		}
		f.sends = append(f.sends, req)
		if len(f.replies) > 0 {
			rep := f.replies[0]
			f.replies = f.replies[1:]
			if rep.status != http.StatusOK {
				writeError(w, rep.status, rep.code, "scripted "+rep.code)
				return
			}
		}
		json.NewEncoder(w).Encode(map[string]string{"MessageId": "msg-" + string(rune('0'+len(f.sends)))})
	case r.Method == http.MethodGet && r.URL.Path == "/v2/email/account":
		if f.acctCode != "" {
			writeError(w, http.StatusForbidden, f.acctCode, "scripted")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"SendQuota":               map[string]float64{"Max24HourSend": 50000, "MaxSendRate": f.rate, "SentLast24Hours": 12},
			"SendingEnabled":          true,
			"ProductionAccessEnabled": true,
			"EnforcementStatus":       "HEALTHY",
		})
	default:
		writeError(w, http.StatusNotFound, "NotFoundException", r.Method+" "+r.URL.Path)
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func (f *fakeSES) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sends)
}

type testBundle struct {
	fake   *fakeSES
	client *sesv2.Client
	sleeps []time.Duration
	clock  time.Time
	opts   Options
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	b := &testBundle{fake: &fakeSES{rate: 14}, clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
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
	require.Equal(t, "msg-1", id)

	require.Len(t, b.fake.sends, 1)
	req := b.fake.sends[0]
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
	require.Nil(t, b.fake.sends[0].ConfigurationSetName)
}

func TestSendRetriesThrottling(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.replies = []reply{
		{http.StatusTooManyRequests, "TooManyRequestsException"},
		{http.StatusTooManyRequests, "TooManyRequestsException"},
	}
	s := New(b.client, b.opts)

	id, err := s.Send(context.Background(), message())
	require.NoError(t, err)
	require.Equal(t, "msg-3", id)
	require.Equal(t, 3, b.fake.calls())
	// Two backoffs (1 s, 2 s); the limiter never had to wait because the backoffs spaced the
	// attempts more than 1 s apart.
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second}, b.sleeps)
}

func TestSendThrottlingIsBounded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for range 10 {
		b.fake.replies = append(b.fake.replies, reply{http.StatusBadRequest, "LimitExceededException"})
	}
	b.opts.MaxRetries = 2
	s := New(b.client, b.opts)

	_, err := s.Send(context.Background(), message())
	require.Error(t, err)
	require.False(t, errors.Is(err, gpubroker.ErrPermanent), "throttling is retryable later")
	// 1 + MaxRetries: the SDK's retryer (3 attempts by default) would have made this 9.
	require.Equal(t, 3, b.fake.calls())
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
			b.fake.replies = []reply{{status, code}}
			s := New(b.client, b.opts)

			_, err := s.Send(context.Background(), message())
			require.Error(t, err)
			require.ErrorContains(t, err, code)
			require.Equal(t, wantPermanent, errors.Is(err, gpubroker.ErrPermanent))
			require.Equal(t, 1, b.fake.calls(), "no retry inside Send")
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
	require.Zero(t, b.fake.calls())
}

func TestInitReadsMaxSendRate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.rate = 2
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
	b.fake.acctCode = "AccessDeniedException"
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
	require.Equal(t, 1, b.fake.calls())
}

func TestTagValue(t *testing.T) {
	t.Parallel()

	require.Equal(t, "pod_ready", tagValue("pod_ready"))
	require.Equal(t, "hold-released_2", tagValue("hold-released.2"))
	require.Equal(t, "unknown", tagValue(""))
	require.Equal(t, "a_b___", tagValue("a b✓"))
}
