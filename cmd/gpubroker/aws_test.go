package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
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

// fakeSQS speaks the three SQS operations the feedback consumer uses, in the AWS JSON 1.0
// protocol (X-Amz-Target), with received messages in flight until deleted.
type fakeSQS struct {
	mu       sync.Mutex
	next     int
	queue    []*sqsMessage
	received int
}

type sqsMessage struct {
	id, receipt, body string
	inFlight          bool
}

func (f *fakeSQS) add(body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.queue = append(f.queue, &sqsMessage{id: "m" + itoa(int64(f.next)), receipt: "rh-" + itoa(int64(f.next)), body: body})
}

func (f *fakeSQS) left() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, m := range f.queue {
		out = append(out, m.body)
	}
	return out
}

func (f *fakeSQS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ReceiptHandle string
		Entries       []struct{ Id, ReceiptHandle string }
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	f.mu.Lock()
	defer f.mu.Unlock()
	remove := func(rh string) bool {
		for i, m := range f.queue {
			if m.receipt == rh {
				f.queue = append(f.queue[:i], f.queue[i+1:]...)
				return true
			}
		}
		return false
	}
	switch r.Header.Get("X-Amz-Target") {
	case "AmazonSQS.ReceiveMessage":
		var msgs []map[string]string
		for _, m := range f.queue {
			if !m.inFlight && len(msgs) < 10 {
				m.inFlight = true
				sum := md5.Sum([]byte(m.body))
				msgs = append(msgs, map[string]string{"MessageId": m.id, "ReceiptHandle": m.receipt, "Body": m.body, "MD5OfBody": hex.EncodeToString(sum[:])})
			}
		}
		if len(msgs) == 0 {
			f.mu.Unlock()
			time.Sleep(50 * time.Millisecond) // a short long-poll
			f.mu.Lock()
		}
		f.received += len(msgs)
		_ = json.NewEncoder(w).Encode(map[string]any{"Messages": msgs})
	case "AmazonSQS.DeleteMessageBatch":
		ok := []map[string]string{}
		for _, e := range req.Entries {
			if remove(e.ReceiptHandle) {
				ok = append(ok, map[string]string{"Id": e.Id})
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"Successful": ok, "Failed": []any{}})
	case "AmazonSQS.DeleteMessage":
		remove(req.ReceiptHandle)
		_, _ = io.WriteString(w, `{}`)
	default:
		http.Error(w, `{"__type":"InvalidAction"}`, http.StatusBadRequest)
	}
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
	queue := &fakeSQS{}
	bounce := `{"eventType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General","bouncedRecipients":[{"emailAddress":"Gone@Example.com"}],"feedbackId":"fb-bounce-1","timestamp":"2026-11-24T10:00:00Z"},"mail":{"messageId":"ses-1","destination":["gone@example.com"]}}`
	complaint, _ := json.Marshal(map[string]string{"Type": "Notification", "Message": `{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"angry@example.com"}],"complaintFeedbackType":"abuse","feedbackId":"fb-complaint-1","timestamp":"2026-11-24T10:00:00Z"},"mail":{"messageId":"ses-2"}}`})
	queue.add(bounce)
	queue.add(string(complaint))
	queue.add("not json at all")
	sqsSrv := httptest.NewServer(queue)
	defer sqsSrv.Close()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
		"AWS_ENDPOINT_URL_SESV2": sesSrv.URL, "AWS_ENDPOINT_URL_S3": s3Srv.URL, "AWS_ENDPOINT_URL_SQS": sqsSrv.URL,
		"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	e := newEnv(t, envOpts{env: map[string]string{"SES_FROM": "GPU Broker <hello@gpubroker.dev>", "SES_CONFIGURATION_SET": "transactional", "OFFERS_BUCKET": "offers-bucket",
		"SQS_FEEDBACK_QUEUE_URL": sqsSrv.URL + "/123456789012/ses-feedback"}})

	// SES feedback: a permanent bounce and an SNS-wrapped complaint suppress their recipients;
	// both messages are deleted after the commit, the unparsable one stays for the DLQ.
	e.eventually("feedback applied and deleted", 10*time.Second, func() bool {
		return e.count(`SELECT count(*) FROM suppressions`) == 2 && len(queue.left()) == 1
	})
	require.Equal(t, []string{"not json at all"}, queue.left())
	require.Equal(t, 1, e.count(`SELECT count(*) FROM suppressions WHERE email = 'gone@example.com' AND reason = 'permanent bounce'`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM suppressions WHERE email = 'angry@example.com' AND reason = 'complaint'`))
	// A redelivered message changes nothing and is deleted again.
	queue.add(bounce)
	e.eventually("redelivery deleted", 10*time.Second, func() bool { return len(queue.left()) == 1 })
	require.Equal(t, 2, e.count(`SELECT count(*) FROM email_feedback`))
	require.Equal(t, 2, e.count(`SELECT count(*) FROM suppressions`))

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
	// Once sent, the outbox keeps the record but no working link.
	e.eventually("scrubbed", 5*time.Second, func() bool {
		return e.count(`SELECT count(*) FROM emails WHERE to_email = 'trial@example.com' AND text_body LIKE '%token=REDACTED%' AND html_body LIKE '%token=REDACTED%'
			AND text_body !~ 'token=[A-Za-z0-9_-]{20,}' AND html_body !~ 'token=[A-Za-z0-9_-]{20,}'`) == 1
	})

	// The bounced address is never sent to again; the outbox row says why.
	code, _ = e.do(newBrowser(), "POST", "/api/checkout", e.order("gone@example.com", "free", "rtx4090", "us-east", 1))
	require.Equal(t, http.StatusCreated, code)
	e.eventually("email suppressed", 10*time.Second, func() bool {
		return e.count(`SELECT count(*) FROM emails WHERE to_email = 'gone@example.com' AND status = 'suppressed' AND error LIKE '%permanent bounce%'`) == 1
	})
	require.Empty(t, ses.sentTo("gone@example.com"))

	// offers.json lands in the bucket.
	_, err := e.m.River.Insert(context.Background(), jobs.RefreshOffersArgs{}, nil)
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
