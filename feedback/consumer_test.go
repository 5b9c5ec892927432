package feedback

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"
)

const queueURL = "https://sqs.us-east-1.amazonaws.com/123456789012/gpubroker-ses-feedback"

// receiveRequest is the part of a ReceiveMessage request the tests check.
type receiveRequest struct {
	QueueUrl                    string
	MaxNumberOfMessages         int
	WaitTimeSeconds             int
	MessageSystemAttributeNames []string
}

type queued struct {
	id, receipt, body string
	inFlight          bool
}

// fakeSQS speaks the AWS JSON 1.0 protocol SQS has used since November 2023, as SDK v1.52
// serializes it (smithy-go awsjson): POST / with X-Amz-Target "AmazonSQS.<Operation>" and
// Content-Type application/x-amz-json-1.0, a JSON body with the operation's member names, and
// errors as a JSON body with "__type". Received messages stay in flight until deleted, which
// is all the visibility timeout the tests need.
type fakeSQS struct {
	t        *testing.T
	mu       sync.Mutex
	messages []*queued
	receives []receiveRequest
	events   *[]string // shared with the store, to check order
	// failBatch makes DeleteMessageBatch report these receipt handles as failed with the
	// given sender fault; failSingle makes DeleteMessage fail for them too.
	failBatch  map[string]bool
	failSingle map[string]bool
}

func (f *fakeSQS) add(bodies ...[]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range bodies {
		n := len(f.messages) + 1
		f.messages = append(f.messages, &queued{id: fmt.Sprintf("m%d", n), receipt: fmt.Sprintf("rh-%d", n), body: string(b)})
	}
}

func (f *fakeSQS) remaining() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, m := range f.messages {
		ids = append(ids, m.id)
	}
	return ids
}

func (f *fakeSQS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/" ||
		r.Header.Get("Content-Type") != "application/x-amz-json-1.0" {
		f.t.Errorf("unexpected request %s %s (Content-Type %q)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		sqsError(w, http.StatusBadRequest, "InvalidAction", "not AWS JSON 1.0")
		return
	}
	target := r.Header.Get("X-Amz-Target")
	if target == "AmazonSQS.ReceiveMessage" {
		f.receive(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch target {
	case "AmazonSQS.DeleteMessageBatch":
		var req struct {
			QueueUrl string
			Entries  []struct{ Id, ReceiptHandle string }
		}
		if !decode(w, r, &req) || !f.checkQueue(w, req.QueueUrl) {
			return
		}
		type failed struct {
			Id, Code, Message string
			SenderFault       bool
		}
		res := struct {
			Successful []map[string]string
			Failed     []failed
		}{Successful: []map[string]string{}, Failed: []failed{}}
		for _, e := range req.Entries {
			if sender, ok := f.failBatch[e.ReceiptHandle]; ok {
				res.Failed = append(res.Failed, failed{Id: e.Id, Code: "InternalError", Message: "scripted", SenderFault: sender})
				continue
			}
			if f.deleteLocked(e.ReceiptHandle) {
				res.Successful = append(res.Successful, map[string]string{"Id": e.Id})
			} else {
				res.Failed = append(res.Failed, failed{Id: e.Id, Code: "ReceiptHandleIsInvalid", Message: "unknown handle", SenderFault: true})
			}
		}
		writeJSON(w, res)
	case "AmazonSQS.DeleteMessage":
		var req struct{ QueueUrl, ReceiptHandle string }
		if !decode(w, r, &req) || !f.checkQueue(w, req.QueueUrl) {
			return
		}
		if f.failSingle[req.ReceiptHandle] || !f.deleteLocked(req.ReceiptHandle) {
			sqsError(w, http.StatusBadRequest, "ReceiptHandleIsInvalid", "cannot delete "+req.ReceiptHandle)
			return
		}
		writeJSON(w, struct{}{})
	default:
		f.t.Errorf("unexpected X-Amz-Target %q", target)
		sqsError(w, http.StatusBadRequest, "InvalidAction", target)
	}
}

func (f *fakeSQS) receive(w http.ResponseWriter, r *http.Request) {
	var req receiveRequest
	if !decode(w, r, &req) {
		return
	}
	f.mu.Lock()
	if !f.checkQueue(w, req.QueueUrl) {
		f.mu.Unlock()
		return
	}
	f.receives = append(f.receives, req)
	type message struct {
		MessageId, ReceiptHandle, MD5OfBody, Body string
		Attributes                                map[string]string
	}
	out := struct{ Messages []message }{Messages: []message{}}
	for _, m := range f.messages {
		if m.inFlight || len(out.Messages) == req.MaxNumberOfMessages {
			continue
		}
		m.inFlight = true
		// The SDK checks MD5OfBody against the body and fails the call on a mismatch.
		sum := md5.Sum([]byte(m.body))
		out.Messages = append(out.Messages, message{
			MessageId: m.id, ReceiptHandle: m.receipt, MD5OfBody: hex.EncodeToString(sum[:]), Body: m.body,
			Attributes: map[string]string{"ApproximateReceiveCount": "1"},
		})
	}
	f.mu.Unlock()
	if len(out.Messages) == 0 && req.WaitTimeSeconds > 0 {
		// A short stand-in for the long poll, so Run does not spin.
		select {
		case <-r.Context().Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	writeJSON(w, out)
}

func (f *fakeSQS) deleteLocked(receipt string) bool {
	for i, m := range f.messages {
		if m.receipt == receipt {
			f.messages = append(f.messages[:i], f.messages[i+1:]...)
			*f.events = append(*f.events, "delete "+m.id)
			return true
		}
	}
	return false
}

func (f *fakeSQS) checkQueue(w http.ResponseWriter, url string) bool {
	if url != queueURL {
		sqsError(w, http.StatusBadRequest, "QueueDoesNotExist", "The specified queue does not exist.")
		return false
	}
	return true
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		sqsError(w, http.StatusBadRequest, "InvalidParameterValue", err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	json.NewEncoder(w).Encode(v)
}

func sqsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + code, "message": msg})
}

// memStore is an in-memory Store. fail makes Apply fail for a feedback id.
type memStore struct {
	mu      sync.Mutex
	applied []Feedback
	fail    map[string]bool
	events  *[]string
	fake    *fakeSQS
}

func (s *memStore) Apply(ctx context.Context, f Feedback) error {
	s.fake.mu.Lock() // events is shared with the fake
	defer s.fake.mu.Unlock()
	if s.fail[f.ID] {
		*s.events = append(*s.events, "fail "+f.ID)
		return errors.New("database is down")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied = append(s.applied, f)
	*s.events = append(*s.events, "apply "+f.ID)
	return nil
}

type testBundle struct {
	fake     *fakeSQS
	store    *memStore
	consumer *Consumer
	events   []string
	logs     *bytes.Buffer
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	b := &testBundle{logs: &bytes.Buffer{}}
	b.fake = &fakeSQS{t: t, events: &b.events}
	b.store = &memStore{fail: map[string]bool{}, events: &b.events, fake: b.fake}
	srv := httptest.NewServer(b.fake)
	t.Cleanup(srv.Close)
	client := sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		// Errors here are bugs in the fake or the consumer: fail fast rather than back off.
		Retryer: aws.NopRetryer{},
	})
	b.consumer = &Consumer{
		Client:   client,
		QueueURL: queueURL,
		Store:    b.store,
		Logger:   slog.New(slog.NewTextHandler(&lockedWriter{w: b.logs}, nil)),
	}
	return b
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestPollOnceAppliesThenDeletes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.add(fixture(t, "bounce_permanent.json"), snsWrap(t, fixture(t, "complaint_notification.json")))

	handled, err := b.consumer.PollOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, handled)

	require.Len(t, b.store.applied, 2)
	require.Equal(t, KindBounce, b.store.applied[0].Kind)
	require.Equal(t, BouncePermanent, b.store.applied[0].BounceType)
	require.Equal(t, []string{"bounce@simulator.amazonses.com"}, b.store.applied[0].Recipients)
	require.Equal(t, KindComplaint, b.store.applied[1].Kind)
	require.Equal(t, []string{"complaint@simulator.amazonses.com"}, b.store.applied[1].Recipients)

	// Both applied before either was deleted: the batch delete comes after the Store commits.
	require.Equal(t, []string{
		"apply 0100017a1b2c3d4e-5f6a7b8c-1111-2222-3333-444455556666-000000",
		"apply 0100017a2b3c4d5e-complaint-0001-000000",
		"delete m1",
		"delete m2",
	}, b.events)
	require.Empty(t, b.fake.remaining())

	require.Equal(t, []receiveRequest{{
		QueueUrl:                    queueURL,
		MaxNumberOfMessages:         10,
		WaitTimeSeconds:             20,
		MessageSystemAttributeNames: []string{"ApproximateReceiveCount"},
	}}, b.fake.receives)
}

func TestPollOnceLeavesFailedApply(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.add(fixture(t, "bounce_permanent.json"), fixture(t, "complaint_notification.json"))
	b.store.fail["0100017a2b3c4d5e-complaint-0001-000000"] = true

	handled, err := b.consumer.PollOnce(context.Background())
	require.NoError(t, err, "a Store failure is handled by leaving the message")
	require.Equal(t, 1, handled)
	require.Equal(t, []string{"m2"}, b.fake.remaining())
	require.NotContains(t, b.events, "delete m2")
	require.Contains(t, b.logs.String(), "storing SES feedback failed")
}

func TestPollOnceLeavesGarbage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.add([]byte("garbage"), []byte(`{"hello":"world"}`), fixture(t, "bounce_transient.json"))

	handled, err := b.consumer.PollOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, handled)
	require.Equal(t, []string{"m1", "m2"}, b.fake.remaining(), "left for the dead-letter queue")
	require.Len(t, b.store.applied, 1)
	require.Equal(t, BounceTransient, b.store.applied[0].BounceType)
	require.Contains(t, b.logs.String(), "unparsable SES feedback message left in the queue")
	require.Contains(t, b.logs.String(), "sqs_message_id=m1")
}

func TestPollOnceDeletesIgnored(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.add(fixture(t, "delivery_event.json"))

	handled, err := b.consumer.PollOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, handled)
	require.Empty(t, b.store.applied)
	require.Empty(t, b.fake.remaining())
}

func TestPollOnceEmpty(t *testing.T) {
	t.Parallel()
	b := setup(t)

	handled, err := b.consumer.PollOnce(context.Background())
	require.NoError(t, err)
	require.Zero(t, handled)
	require.Len(t, b.fake.receives, 1)
}

func TestPollOnceChecksFailedDeletes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.add(fixture(t, "bounce_permanent.json"), fixture(t, "complaint_notification.json"), fixture(t, "bounce_transient.json"))
	// m1: the batch fails server-side, the single retry succeeds.
	// m2: the batch fails on our side (sender fault): not retried, reported.
	b.fake.failBatch = map[string]bool{"rh-1": false, "rh-2": true}

	handled, err := b.consumer.PollOnce(context.Background())
	require.Error(t, err)
	require.ErrorContains(t, err, "error deleting message 1")
	require.Equal(t, 2, handled)
	require.Equal(t, []string{"m2"}, b.fake.remaining())
	require.Len(t, b.store.applied, 3, "all applied; m2 will be applied again, idempotently")
}

func TestPollOnceReceiveError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.consumer.QueueURL = "https://sqs.us-east-1.amazonaws.com/123456789012/missing"

	_, err := b.consumer.PollOnce(context.Background())
	require.ErrorContains(t, err, "QueueDoesNotExist")
}

func TestRunUntilCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.add(fixture(t, "bounce_permanent.json"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.consumer.Run(ctx) }()

	require.Eventually(t, func() bool { return len(b.fake.remaining()) == 0 }, 5*time.Second, 10*time.Millisecond)
	// Let it go round a few empty long polls, then stop it.
	require.Eventually(t, func() bool {
		b.fake.mu.Lock()
		defer b.fake.mu.Unlock()
		return len(b.fake.receives) >= 3
	}, 5*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	b.fake.mu.Lock()
	defer b.fake.mu.Unlock()
	for _, r := range b.fake.receives {
		require.Equal(t, 10, r.MaxNumberOfMessages)
		require.Equal(t, 20, r.WaitTimeSeconds)
	}
	require.Len(t, b.store.applied, 1)
}

func TestRunNeedsConfiguration(t *testing.T) {
	t.Parallel()

	require.Error(t, (&Consumer{}).Run(context.Background()))
}
