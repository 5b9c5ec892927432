package gpubroker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
)

// Orders only move forward: no move can be undone, and the ended statuses have no way out.
func TestOrderTransitionsAreOneWay(t *testing.T) {
	t.Parallel()
	for _, from := range gpubroker.OrderStatuses {
		for _, to := range gpubroker.OrderStatuses {
			if from.CanMoveTo(to) {
				require.False(t, to.CanMoveTo(from), "%s -> %s -> %s would go backwards", from, to, from)
			}
		}
	}
	for _, end := range []gpubroker.OrderStatus{gpubroker.OrderFree, gpubroker.OrderRefunded, gpubroker.OrderExpired, gpubroker.OrderReleased} {
		for _, to := range gpubroker.OrderStatuses {
			require.False(t, end.CanMoveTo(to), "%s -> %s", end, to)
		}
	}
	require.False(t, gpubroker.OrderCaptured.CanMoveTo(gpubroker.OrderAuthorized))
	require.True(t, gpubroker.OrderAuthorized.CanMoveTo(gpubroker.OrderCaptured))
	require.True(t, gpubroker.OrderCheckoutPending.CanMoveTo(gpubroker.OrderAuthorized))
}

// Pods move forward too, but for one step back: a capture that kept failing hands a deploying
// pod back to configured. Ended pods never move again; nothing skips from configured to running.
func TestPodTransitions(t *testing.T) {
	t.Parallel()
	for _, from := range gpubroker.PodStatuses {
		for _, to := range gpubroker.PodStatuses {
			if from.CanMoveTo(to) && to.CanMoveTo(from) {
				require.ElementsMatch(t, []gpubroker.PodStatus{gpubroker.PodDeploying, gpubroker.PodConfigured}, []gpubroker.PodStatus{from, to})
			}
		}
		if from.Ended() {
			for _, to := range gpubroker.PodStatuses {
				require.False(t, from.CanMoveTo(to), "%s -> %s", from, to)
			}
		}
	}
	require.False(t, gpubroker.PodConfigured.CanMoveTo(gpubroker.PodRunning), "never run without a capture")
	require.False(t, gpubroker.PodFailed.CanMoveTo(gpubroker.PodRunning), "a late provision run cannot revive a failed pod")
	require.True(t, gpubroker.PodProvisioning.CanMoveTo(gpubroker.PodRunning))
}

// The hold is released a day before Stripe's deadline, or before 7 days when Stripe gave none.
func TestHoldTimes(t *testing.T) {
	t.Parallel()
	auth := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	require.Equal(t, auth.Add(7*24*time.Hour), gpubroker.HoldDeadline(auth, time.Time{}))
	visa := auth.Add(4*24*time.Hour + 18*time.Hour)
	require.Equal(t, visa, gpubroker.HoldDeadline(auth, visa))
	require.Equal(t, auth.Add(6*24*time.Hour), gpubroker.HoldReleaseAt(gpubroker.HoldDeadline(auth, time.Time{})))
}

// The pod transition table names an audit action for every move, and CanMoveTo agrees with it.
func TestPodMovesNameTheirAudit(t *testing.T) {
	moves := 0
	for _, from := range gpubroker.PodStatuses {
		for _, to := range gpubroker.PodStatuses {
			action, ok := gpubroker.PodMoveAction(from, to)
			if ok {
				moves++
				require.True(t, strings.HasPrefix(string(action), "pod."), "%s -> %s is audited as %q", from, to, action)
			}
			require.Equal(t, ok && from != to, from.CanMoveTo(to), "CanMoveTo(%s, %s)", from, to)
		}
	}
	require.Equal(t, 12, moves)
	_, ok := gpubroker.PodMoveAction(gpubroker.PodTerminated, gpubroker.PodRunning)
	require.False(t, ok, "a terminated pod never runs again")
}

// The order transition table names an order.* audit action for every move, and CanMoveTo
// agrees with it; orders move one way only.
func TestOrderMovesNameTheirAudit(t *testing.T) {
	moves := 0
	for _, from := range gpubroker.OrderStatuses {
		for _, to := range gpubroker.OrderStatuses {
			action, ok := gpubroker.OrderMoveAction(from, to)
			if ok {
				moves++
				require.True(t, strings.HasPrefix(string(action), "order."), "%s -> %s is audited as %q", from, to, action)
			}
			require.Equal(t, ok, from.CanMoveTo(to), "CanMoveTo(%s, %s)", from, to)
		}
	}
	require.Equal(t, 6, moves)
	require.False(t, gpubroker.OrderCaptured.CanMoveTo(gpubroker.OrderAuthorized), "a captured order is never authorized again")
}
