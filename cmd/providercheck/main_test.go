package main

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
	"gpubroker/gpu/sim"
)

// The check runs its steps against the simulator and ends every instance it launched; a pod
// whose IDE never answers fails it, and is ended all the same.
func TestCheckAgainstTheSimulator(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(nil)
	s := sim.New(sim.Options{IDEBaseURL: "http://" + srv.Listener.Addr().String()})
	srv.Config.Handler = s.Handler()
	srv.Start()
	t.Cleanup(srv.Close)

	line, err := check(context.Background(), s, "img", gpu.IDECodeServer, time.Minute)
	require.NoError(t, err)
	require.Contains(t, line, "usable")
	require.Contains(t, line, "ssh login")
	require.Contains(t, line, "terminated (true)")

	s.BreakNext(sim.NoIDE, 1)
	line, err = check(context.Background(), s, "img", gpu.IDEJupyter, 3*time.Second)
	require.ErrorContains(t, err, "not usable")
	require.Contains(t, line, "terminated (true)")
	for _, in := range s.Instances() {
		require.Equal(t, gpu.StateTerminated, in.State)
	}
}
