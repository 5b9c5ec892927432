package gpubroker_test

import (
	"testing"

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
	for _, end := range []gpubroker.OrderStatus{gpubroker.OrderFree, gpubroker.OrderRefunded, gpubroker.OrderExpired, gpubroker.OrderReleased, gpubroker.OrderDeclined} {
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
