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

// Issue 25 item 6: customers read every time in one format, "Mon 7 Dec 2026, 20:15 UTC" (the
// dashboard's is the same in the browser's zone): every time in every email, whatever zone the
// time was made in, is in UTC and in that format, and no other date format appears.
func TestEveryEmailTimeInOneFormat(t *testing.T) {
	t.Parallel()
	cet := time.FixedZone("CET", 3600)
	d := sampleData()
	d.Pod.EndsAt = time.Date(2026, 12, 7, 21, 15, 0, 0, cet)
	d.Pod.DeployBy = time.Date(2026, 12, 13, 22, 5, 0, 0, cet)
	one := regexp.MustCompile(`(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}, \d{2}:\d{2} UTC`)
	other := regexp.MustCompile(`\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{1,2}:\d{2}(:\d{2})? ?(AM|PM|am|pm)|CET|GMT|[+-]\d{2}:?\d{2}\b`)
	for _, kind := range Kinds() {
		subject, text, html, err := Render(kind, d)
		require.NoError(t, err)
		for _, body := range []string{subject, text, html} {
			rest := one.ReplaceAllString(body, "")
			require.False(t, other.MatchString(rest), "%s: %q", kind, other.FindString(rest))
		}
	}
	_, text, _, err := Render(gpubroker.MailPodReady, d)
	require.NoError(t, err)
	require.Contains(t, text, "Ends:       Mon 7 Dec 2026, 20:15 UTC")
	subject, text, html, err := Render(gpubroker.MailPodWaiting, d)
	require.NoError(t, err)
	require.Equal(t, "Your pod is waiting: deploy it by Sun 13 Dec 2026, 21:05 UTC", subject)
	require.Contains(t, text, "deploy it by Sun 13 Dec 2026, 21:05 UTC")
	require.Contains(t, html, "Sun 13 Dec 2026, 21:05 UTC")
}
