package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"

	"gpubroker/jobs"
)

// fakeSES speaks the two SES v2 REST-JSON operations the sender uses and records SendEmail.
type fakeSES struct {
	mu    sync.Mutex
	sends []map[string]any
}

func (f *fakeSES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == "GET" && r.URL.Path == "/v2/email/account":
		_, _ = io.WriteString(w, `{"SendQuota":{"Max24HourSend":50000,"MaxSendRate":14,"SentLast24Hours":0},"SendingEnabled":true,"ProductionAccessEnabled":true}`)
	case r.Method == "POST" && r.URL.Path == "/v2/email/outbound-emails":
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.sends = append(f.sends, body)
		n := len(f.sends)
		f.mu.Unlock()
		_, _ = io.WriteString(w, `{"MessageId":"ses-msg-`+itoa(int64(n))+`"}`)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeSES) sentTo(addr string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]any
	for _, s := range f.sends {
		for _, to := range s["Destination"].(map[string]any)["ToAddresses"].([]any) {
			if to == addr {
				out = append(out, s)
			}
		}
	}
	return out
}

// With SES and S3 configured through the SDK's standard AWS_ENDPOINT_URL_* variables, the real
// clients talk to local endpoints: a free-trial sign-up makes exactly one SendEmail, a
// suppressed address gets none, and the offers job publishes offers.json with its cache header.
// Not parallel: it sets process environment variables.
func TestAWSAdapters(t *testing.T) {
	ses := &fakeSES{}
	sesSrv := httptest.NewServer(ses)
	defer sesSrv.Close()
	s3Backend := s3mem.New()
	require.NoError(t, s3Backend.CreateBucket("offers-bucket"))
	var s3Put http.Header
	var s3mu sync.Mutex
	fake := gofakes3.New(s3Backend).Server()
	s3Srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" {
			s3mu.Lock()
			s3Put = r.Header.Clone()
			s3mu.Unlock()
		}
		fake.ServeHTTP(w, r)
	}))
	defer s3Srv.Close()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
		"AWS_ENDPOINT_URL_SESV2": sesSrv.URL, "AWS_ENDPOINT_URL_S3": s3Srv.URL,
		"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	e := newEnv(t, envOpts{env: map[string]string{"SES_FROM": "GPU Broker <hello@gpubroker.dev>", "SES_CONFIGURATION_SET": "transactional", "OFFERS_BUCKET": "offers-bucket"}})

	code, body := e.do(newBrowser(), "POST", "/api/checkout", e.order("trial@example.com", "free", "rtx4090", "us-east", 1))
	require.Equal(t, http.StatusCreated, code, body)
	e.eventually("email sent", 10*time.Second, func() bool {
		return e.count(`SELECT count(*) FROM emails WHERE to_email = 'trial@example.com' AND status = 'sent'`) == 1
	})
	sends := ses.sentTo("trial@example.com")
	require.Len(t, sends, 1)
	require.Equal(t, "transactional", sends[0]["ConfigurationSetName"])
	simple := sends[0]["Content"].(map[string]any)["Simple"].(map[string]any)
	require.Contains(t, simple["Body"].(map[string]any)["Text"].(map[string]any)["Data"], "/activate/?token=")
	require.Contains(t, simple["Body"].(map[string]any)["Html"].(map[string]any)["Data"], "/activate/?token=")
	require.Equal(t, []any{map[string]any{"Name": "kind", "Value": "activation"}}, sends[0]["EmailTags"])
	require.Equal(t, 1, e.count(`SELECT count(*) FROM emails WHERE provider_message_id LIKE 'ses-msg-%'`))

	// A suppressed address is never sent to; the outbox row says why.
	_, err := e.m.Pool.Exec(context.Background(), `INSERT INTO suppressions (email, reason) VALUES ('bounced@example.com', 'permanent bounce')`)
	require.NoError(t, err)
	code, _ = e.do(newBrowser(), "POST", "/api/checkout", e.order("bounced@example.com", "free", "rtx4090", "us-east", 1))
	require.Equal(t, http.StatusCreated, code)
	e.eventually("email suppressed", 10*time.Second, func() bool {
		return e.count(`SELECT count(*) FROM emails WHERE to_email = 'bounced@example.com' AND status = 'suppressed' AND error LIKE '%permanent bounce%'`) == 1
	})
	require.Empty(t, ses.sentTo("bounced@example.com"))

	// offers.json lands in the bucket.
	_, err = e.m.River.Insert(context.Background(), jobs.RefreshOffersArgs{}, nil)
	require.NoError(t, err)
	e.eventually("offers.json", 10*time.Second, func() bool {
		_, err := s3Backend.HeadObject("offers-bucket", "offers.json")
		return err == nil
	})
	obj, err := s3Backend.GetObject("offers-bucket", "offers.json", nil)
	require.NoError(t, err)
	defer obj.Contents.Close()
	raw, _ := io.ReadAll(obj.Contents)
	require.Equal(t, "application/json", obj.Metadata["Content-Type"])
	s3mu.Lock()
	require.Equal(t, "max-age=60", s3Put.Get("Cache-Control"))
	s3mu.Unlock()
	var feed struct {
		UpdatedAt time.Time `json:"updated_at"`
		Offers    []struct {
			GPU         string `json:"gpu"`
			HourlyCents int64  `json:"hourly_cents"`
			Available   bool   `json:"available"`
		} `json:"offers"`
	}
	require.NoError(t, json.Unmarshal(raw, &feed))
	require.NotEmpty(t, feed.Offers)
	require.WithinDuration(t, time.Now(), feed.UpdatedAt, time.Minute)
	require.True(t, strings.Contains(string(raw), `"h100"`))
}
