package feedback

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"gpubroker/feedback/sqsfake"
)

const queueURL = "https://sqs.us-east-1.amazonaws.com/123456789012/gpubroker-ses-feedback"

// memStore is an in-memory Store. fail makes Apply fail for a feedback id.
type memStore struct {
	mu      sync.Mutex
	applied []Feedback
	fail    map[string]bool
	events  *events
}

func (s *memStore) Apply(ctx context.Context, f Feedback) error {
	if s.fail[f.ID] {
		s.events.add("fail " + f.ID)
		return errors.New("database is down")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied = append(s.applied, f)
	s.events.add("apply " + f.ID)
	return nil
}

// events is what the store and the queue did, in order, to check that deletes follow commits.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.list...)
}

type testBundle struct {
	fake     *sqsfake.SQS
	store    *memStore
	consumer *Consumer
	events   *events
	logs     *bytes.Buffer
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	b := &testBundle{logs: &bytes.Buffer{}, events: &events{}}
	b.fake = &sqsfake.SQS{QueueURL: queueURL, Unexpected: t.Errorf, OnDelete: func(id string) { b.events.add("delete " + id) }}
	b.store = &memStore{fail: map[string]bool{}, events: b.events}
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

// add queues raw message bodies.
func (b *testBundle) add(bodies ...[]byte) {
	for _, body := range bodies {
		b.fake.Add(string(body))
	}
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
	b.add(fixture(t, "bounce_permanent.json"), snsWrap(t, fixture(t, "complaint_notification.json")))

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
	}, b.events.all())
	require.Empty(t, b.fake.Remaining())

	require.Equal(t, []sqsfake.ReceiveRequest{{
		QueueUrl:                    queueURL,
		MaxNumberOfMessages:         10,
		WaitTimeSeconds:             20,
		MessageSystemAttributeNames: []string{"ApproximateReceiveCount"},
	}}, b.fake.Receives())
}

func TestPollOnceLeavesFailedApply(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.add(fixture(t, "bounce_permanent.json"), fixture(t, "complaint_notification.json"))
	b.store.fail["0100017a2b3c4d5e-complaint-0001-000000"] = true

	handled, err := b.consumer.PollOnce(context.Background())
	require.NoError(t, err, "a Store failure is handled by leaving the message")
	require.Equal(t, 1, handled)
	require.Equal(t, []string{"m2"}, b.fake.Remaining())
	require.NotContains(t, b.events.all(), "delete m2")
	require.Contains(t, b.logs.String(), "storing SES feedback failed")
}

func TestPollOnceLeavesGarbage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.add([]byte("garbage"), []byte(`{"hello":"world"}`), fixture(t, "bounce_transient.json"))

	handled, err := b.consumer.PollOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, handled)
	require.Equal(t, []string{"m1", "m2"}, b.fake.Remaining(), "left for the dead-letter queue")
	require.Len(t, b.store.applied, 1)
	require.Equal(t, BounceTransient, b.store.applied[0].BounceType)
	require.Contains(t, b.logs.String(), "unparsable SES feedback message left in the queue")
	require.Contains(t, b.logs.String(), "sqs_message_id=m1")
}

func TestPollOnceDeletesIgnored(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.add(fixture(t, "delivery_event.json"))

	handled, err := b.consumer.PollOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, handled)
	require.Empty(t, b.store.applied)
	require.Empty(t, b.fake.Remaining())
}

func TestPollOnceEmpty(t *testing.T) {
	t.Parallel()
	b := setup(t)

	handled, err := b.consumer.PollOnce(context.Background())
	require.NoError(t, err)
	require.Zero(t, handled)
	require.Len(t, b.fake.Receives(), 1)
}

func TestPollOnceChecksFailedDeletes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.add(fixture(t, "bounce_permanent.json"), fixture(t, "complaint_notification.json"), fixture(t, "bounce_transient.json"))
	// m1: the batch fails server-side, the single retry succeeds.
	// m2: the batch fails on our side (sender fault): not retried, reported.
	b.fake.FailBatch = map[string]bool{"rh-1": false, "rh-2": true}

	handled, err := b.consumer.PollOnce(context.Background())
	require.Error(t, err)
	require.ErrorContains(t, err, "error deleting message 1")
	require.Equal(t, 2, handled)
	require.Equal(t, []string{"m2"}, b.fake.Remaining())
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
	b.add(fixture(t, "bounce_permanent.json"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.consumer.Run(ctx) }()

	require.Eventually(t, func() bool { return len(b.fake.Remaining()) == 0 }, 5*time.Second, 10*time.Millisecond)
	// Let it go round a few empty long polls, then stop it.
	require.Eventually(t, func() bool { return len(b.fake.Receives()) >= 3 }, 5*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for _, r := range b.fake.Receives() {
		require.Equal(t, 10, r.MaxNumberOfMessages)
		require.Equal(t, 20, r.WaitTimeSeconds)
	}
	require.Len(t, b.store.applied, 1)
}

func TestRunNeedsConfiguration(t *testing.T) {
	t.Parallel()

	require.Error(t, (&Consumer{}).Run(context.Background()))
}
