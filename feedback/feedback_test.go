package feedback

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// snsWrap wraps body the way SNS does without raw message delivery: the SES JSON becomes a
// string in the envelope's Message field.
func snsWrap(t *testing.T, body []byte) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]string{
		"Type":      "Notification",
		"MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
		"TopicArn":  "arn:aws:sns:us-east-1:123456789012:gpubroker-ses-feedback",
		"Message":   string(body),
		"Timestamp": "2026-02-04T08:00:01.000Z",
	})
	require.NoError(t, err)
	return b
}

func TestParsePermanentBounce(t *testing.T) {
	t.Parallel()

	f, err := Parse(fixture(t, "bounce_permanent.json"))
	require.NoError(t, err)
	require.Equal(t, &Feedback{
		ID:         "0100017a1b2c3d4e-5f6a7b8c-1111-2222-3333-444455556666-000000",
		Kind:       KindBounce,
		BounceType: BouncePermanent,
		Recipients: []string{"bounce@simulator.amazonses.com"},
		MessageID:  "0100017a1b2c3d4e-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee-000000",
		At:         time.Date(2026, 2, 3, 10, 20, 30, 456000000, time.UTC),
	}, f)
	require.True(t, f.Suppresses())
}

func TestParseComplaintNotification(t *testing.T) {
	t.Parallel()

	// notificationType instead of eventType: identity notifications, no configuration set.
	for name, body := range map[string][]byte{
		"raw":         fixture(t, "complaint_notification.json"),
		"sns-wrapped": snsWrap(t, fixture(t, "complaint_notification.json")),
	} {
		t.Run(name, func(t *testing.T) {
			f, err := Parse(body)
			require.NoError(t, err)
			require.Equal(t, KindComplaint, f.Kind)
			require.Empty(t, f.BounceType)
			require.Equal(t, "0100017a2b3c4d5e-complaint-0001-000000", f.ID)
			require.Equal(t, []string{"complaint@simulator.amazonses.com"}, f.Recipients)
			require.Equal(t, "0100017a2b3c4d5e-msg-0002-000000", f.MessageID)
			require.Equal(t, time.Date(2026, 2, 4, 8, 0, 0, 0, time.UTC), f.At)
			require.True(t, f.Suppresses())
		})
	}
}

func TestParseTransientBounceNormalizesRecipients(t *testing.T) {
	t.Parallel()

	f, err := Parse(fixture(t, "bounce_transient.json"))
	require.NoError(t, err)
	require.Equal(t, BounceTransient, f.BounceType)
	require.Equal(t, []string{"ada@example.com"}, f.Recipients, "display names stripped, case folded, deduplicated")
	require.False(t, f.Suppresses())
}

func TestParseEventBridge(t *testing.T) {
	t.Parallel()

	f, err := Parse(fixture(t, "eventbridge_bounce.json"))
	require.NoError(t, err)
	require.Equal(t, "eb-0004", f.ID)
	require.Equal(t, BounceUndetermined, f.BounceType)
	require.False(t, f.Suppresses())
}

func TestParseIgnored(t *testing.T) {
	t.Parallel()

	for name, body := range map[string][]byte{
		"delivery":             fixture(t, "delivery_event.json"),
		"sns-wrapped delivery": snsWrap(t, fixture(t, "delivery_event.json")),
		"sns subscription":     []byte(`{"Type":"SubscriptionConfirmation","Message":"You have chosen to subscribe","SubscribeURL":"https://sns.example/"}`),
		"ses subscription":     []byte(`{"notificationType":"AmazonSnsSubscriptionSucceeded","message":"ok"}`),
	} {
		_, err := Parse(body)
		require.ErrorIs(t, err, ErrIgnored, name)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()

	for name, body := range map[string]string{
		"not json":              `garbage`,
		"empty":                 ``,
		"unknown json":          `{"hello":"world"}`,
		"bounce without object": `{"eventType":"Bounce"}`,
		"no feedback id":        `{"eventType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"a@b.example"}]}}`,
		"no recipients":         `{"eventType":"Complaint","complaint":{"feedbackId":"x","complainedRecipients":[]}}`,
		"sns with garbage":      `{"Type":"Notification","Message":"not json"}`,
		"double envelope":       string(snsWrap(t, snsWrap(t, fixture(t, "bounce_permanent.json")))),
	} {
		_, err := Parse([]byte(body))
		require.Error(t, err, name)
		require.False(t, errors.Is(err, ErrIgnored), "%s must stay in the queue, not be ignored", name)
	}
}
