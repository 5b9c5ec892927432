package main

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/billing"
)

// The load's events are 2.5 KB, well-formed, distinct, and pass the API's own verification.
func TestEventsAreSignedStripeEvents(t *testing.T) {
	tmpl, err := newTemplate()
	require.NoError(t, err)
	require.Len(t, tmpl.body, eventSize)
	const secret = "whsec_loadtest"
	seen := map[string]bool{}
	for _, n := range []uint64{1, 2, 999_999} {
		body := slices.Clone(tmpl.body)
		tmpl.fill(body, "loadabc", n)
		require.True(t, json.Valid(body))
		ev, err := billing.ParseWebhook(body, sign([]byte(secret), time.Now(), body), secret)
		require.NoError(t, err)
		require.Equal(t, "checkout.session.completed", ev.Type)
		require.Len(t, ev.ClientReferenceID, 36)
		require.False(t, seen[ev.ID], ev.ID)
		seen[ev.ID] = true
	}
	require.Contains(t, pgbenchScript, "river_job")
}

func TestProcessCPU(t *testing.T) {
	ppid, _, ok := procStat(os.Getpid(), true)
	if !ok {
		t.Skip("no /proc")
	}
	require.Equal(t, os.Getppid(), ppid)
}
