package mail

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
)

// Issue 15.7: the footer of every email (free trials' too) says nothing untrue: a free pod is
// not paid, and a paid one is charged at Deploy, not "up front".
func TestFooterIsTrueForEveryone(t *testing.T) {
	t.Parallel()
	for _, kind := range Kinds() {
		_, text, html, err := Render(kind, sampleData())
		require.NoError(t, err)
		for _, body := range []string{text, html} {
			require.NotContains(t, body, "paid up front", kind)
			require.Contains(t, body, "GPU pods by the hour", kind)
		}
	}
}

// Issue 15.2: an ended pod's email says when it ended (terminated_at), with its time zone,
// never the end it was scheduled for.
func TestEndedPodSaysWhenItEnded(t *testing.T) {
	t.Parallel()
	d := sampleData()
	d.Pod.EndedAt = time.Date(2026, 3, 1, 12, 10, 0, 0, time.UTC)
	for _, kind := range []string{gpubroker.MailPodEnded, gpubroker.MailRefunded, gpubroker.MailPodFailed} {
		_, text, html, err := Render(kind, d)
		require.NoError(t, err)
		for _, body := range []string{text, html} {
			require.Contains(t, body, "Ended", kind)
			require.Contains(t, body, "Sun 1 Mar 2026, 12:10 UTC", kind)
			require.NotContains(t, body, "14:00", "the scheduled end is not shown: "+kind)
		}
	}
	d.Pod.EndedAt = time.Time{}
	_, text, _, err := Render(gpubroker.MailPodReady, d)
	require.NoError(t, err)
	require.Contains(t, text, "Ends:       Sun 1 Mar 2026, 14:00 UTC", "a running pod says when it will end")
}

// Issue 25 item 2: the templates themselves never speak of a plan fee (only the refund texts
// do, and only when the order paid one: jobs' feeKept) nor refund by the hour (the rule is per
// minute: gpubroker.UnusedMinutesCents); what a refund was for comes in Reason.
func TestTemplatesNameNoFeeAndNoRefundedHours(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`(?i)plan fee|\bfee\b|hours? (it|you) did not use|unused hours?|after \d+ hours?`)
	d := sampleData()
	d.Reason = ""
	for _, kind := range Kinds() {
		subject, text, html, err := Render(kind, d)
		require.NoError(t, err)
		for _, body := range []string{subject, text, html} {
			require.False(t, re.MatchString(body), "%s: %q", kind, re.FindString(body))
		}
	}
}
