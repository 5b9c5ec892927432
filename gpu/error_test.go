package gpu_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
)

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	refused := &url.Error{Op: "Post", URL: "https://example", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	for _, tc := range []struct {
		name                     string
		err                      error
		retry, failover, skipPro bool
	}{
		{"nil", nil, false, false, false},
		{"no capacity", fmt.Errorf("x: %w", gpu.ErrNoCapacity), false, true, false},
		{"offer gone", fmt.Errorf("x: %w", gpu.ErrOfferGone), false, true, false},
		{"auth", fmt.Errorf("x: %w", gpu.ErrAuth), false, false, true},
		{"funds", fmt.Errorf("x: %w", gpu.ErrInsufficientFunds), false, false, true},
		{"not found", gpu.ErrNotFound, false, false, false},
		{"provider config", fmt.Errorf("x: %w", gpu.ErrProviderConfig), false, true, true},
		{"429", &gpu.RateLimitedError{RetryAfter: time.Second}, true, false, false},
		{"5xx", fmt.Errorf("x: %w", gpu.ErrUnavailable), true, false, false},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true, false, false},
		{"canceled", context.Canceled, false, false, false},
		{"refused", refused, true, false, false},
		{"unknown", errors.New("boom"), false, false, false},
	} {
		require.Equal(t, tc.retry, gpu.Retryable(tc.err), "Retryable(%s)", tc.name)
		require.Equal(t, tc.failover, gpu.Failover(tc.err), "Failover(%s)", tc.name)
		require.Equal(t, tc.skipPro, gpu.SkipProvider(tc.err), "SkipProvider(%s)", tc.name)
	}
}

func TestRateLimitedError(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("launch: %w", &gpu.RateLimitedError{RetryAfter: 12 * time.Second})
	require.ErrorIs(t, err, gpu.ErrRateLimited)
	require.Equal(t, 12*time.Second, gpu.RetryAfter(err))
	require.Zero(t, gpu.RetryAfter(gpu.ErrUnavailable))
	require.Contains(t, err.Error(), "12s")
}

func TestLaunchRequestValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, gpu.LaunchRequest{Name: "p", IDE: gpu.IDECodeServer}.Validate())
	require.Error(t, gpu.LaunchRequest{IDE: gpu.IDEJupyter}.Validate())
	require.Error(t, gpu.LaunchRequest{Name: "p", IDE: "emacs"}.Validate())
}

func TestStateLive(t *testing.T) {
	t.Parallel()
	for s, live := range map[gpu.State]bool{
		gpu.StatePending: true, gpu.StateBooting: true, gpu.StateRunning: true, gpu.StateFailed: true,
		gpu.StateUnknown:     true, // it may still bill
		gpu.StateTerminating: false, gpu.StateTerminated: false,
	} {
		require.Equal(t, live, s.Live(), string(s))
	}
}
