package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Issue 21 item 2: no outside call holds up start-up. With every outside service taking the
// request and answering nothing, the api and the worker, started as Terraform starts them,
// still answer /readyz at once: the worker read SES's sending quota before it served or ran a
// job, and waited for it for ever.
func TestHungOutsideServicesDoNotHoldUpStartup(t *testing.T) {
	t.Parallel()
	w := newTFWorld(t)
	hung := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so a client that hangs up cancels r.Context()
		select {
		case <-hung:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hung) }) // before srv.Close, which waits for the handlers
	for i, kv := range w.extra {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "STRIPE_API_BASE", "RUNPOD_API_BASE", "AWS_ENDPOINT_URL_SESV2", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_S3":
			w.extra[i] = k + "=" + srv.URL
		}
	}
	w.values["SQS_FEEDBACK_QUEUE_URL"] = srv.URL + "/123456789012/gpubroker-ses-feedback"
	start := time.Now()
	w.start("api")
	w.start("worker")
	require.Less(t, time.Since(start), 20*time.Second, "start-up waited for an outside service")
}
