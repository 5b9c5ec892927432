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

	"gpubroker/feedback/sqsfake"
	"gpubroker/jobs"
	"gpubroker/mail/ses/sesfake"
)

// With SES and S3 configured through the SDK's standard AWS_ENDPOINT_URL_* variables, the real
// clients talk to local endpoints: a free-trial sign-up makes exactly one SendEmail, a
// suppressed address gets none, and the offers job publishes offers.json with its cache header.
// Not parallel: it sets process environment variables.
func TestAWSAdapters(t *testing.T) {
	ses := &sesfake.SES{}
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
	queue := &sqsfake.SQS{}
	bounce := `{"eventType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General","bouncedRecipients":[{"emailAddress":"Gone@Example.com"}],"feedbackId":"fb-bounce-1","timestamp":"2026-11-24T10:00:00Z"},"mail":{"messageId":"ses-1","destination":["gone@example.com"]}}`
	complaint, _ := json.Marshal(map[string]string{"Type": "Notification", "Message": `{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"angry@example.com"}],"complaintFeedbackType":"abuse","feedbackId":"fb-complaint-1","timestamp":"2026-11-24T10:00:00Z"},"mail":{"messageId":"ses-2"}}`})
	queue.Add(bounce)
	queue.Add(string(complaint))
	queue.Add("not json at all")
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
	e.eventually("feedback applied and deleted", func() bool {
		return e.count(`SELECT count(*) FROM suppressions`) == 2 && len(queue.RemainingBodies()) == 1
	})
	require.Equal(t, []string{"not json at all"}, queue.RemainingBodies())
	require.Equal(t, 1, e.count(`SELECT count(*) FROM suppressions WHERE email = 'gone@example.com' AND reason = 'permanent bounce'`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM suppressions WHERE email = 'angry@example.com' AND reason = 'complaint'`))
	// A redelivered message changes nothing and is deleted again.
	queue.Add(bounce)
	e.eventually("redelivery deleted", func() bool { return len(queue.RemainingBodies()) == 1 })
	require.Equal(t, 2, e.count(`SELECT count(*) FROM email_feedback`))
	require.Equal(t, 2, e.count(`SELECT count(*) FROM suppressions`))

	res := e.api(newBrowser()).Checkout(e.order("trial@example.com", "free", "rtx4090", "us-east", 1))
	require.Equal(t, http.StatusCreated, res.Code, res)
	e.eventually("email sent", func() bool {
		return e.count(`SELECT count(*) FROM emails WHERE to_email = 'trial@example.com' AND status = 'sent'`) == 1
	})
	sends := ses.SentTo("trial@example.com")
	require.Len(t, sends, 1)
	require.Equal(t, "transactional", *sends[0].ConfigurationSetName)
	simple := sends[0].Content.Simple
	require.Contains(t, simple.Body.Text.Data, "/activate/?token=")
	require.Contains(t, simple.Body.Html.Data, "/activate/?token=")
	require.Len(t, sends[0].EmailTags, 1)
	require.Equal(t, "kind", sends[0].EmailTags[0].Name)
	require.Equal(t, "activation", sends[0].EmailTags[0].Value)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM emails WHERE provider_message_id LIKE 'ses-msg-%'`))
	// Once sent, the outbox keeps the record but no working link.
	e.eventually("scrubbed", func() bool {
		return e.count(`SELECT count(*) FROM emails WHERE to_email = 'trial@example.com' AND text_body LIKE '%token=REDACTED%' AND html_body LIKE '%token=REDACTED%'
			AND text_body !~ 'token=[A-Za-z0-9_-]{20,}' AND html_body !~ 'token=[A-Za-z0-9_-]{20,}'`) == 1
	})

	// The bounced address is never sent to again; the outbox row says why.
	require.Equal(t, http.StatusCreated, e.api(newBrowser()).Checkout(e.order("gone@example.com", "free", "rtx4090", "us-east", 1)).Code)
	e.eventually("email suppressed", func() bool {
		return e.count(`SELECT count(*) FROM emails WHERE to_email = 'gone@example.com' AND status = 'suppressed' AND error LIKE '%permanent bounce%'`) == 1
	})
	require.Empty(t, ses.SentTo("gone@example.com"))

	// offers.json lands in the bucket.
	_, err := e.m.River.Insert(context.Background(), jobs.RefreshOffersArgs{}, nil)
	require.NoError(t, err)
	e.eventually("offers.json", func() bool {
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
