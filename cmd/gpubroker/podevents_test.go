package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Issue 25, "pod readiness pushed, not polled": a change made elsewhere (another tab stops the
// pod) shows on the dashboard within seconds, where polling a running pod would wait 15 s.
func TestBrowserPodChangesArePushed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c, podID := e.signUp("pushed@example.com")
	e.deploy(c, podID)
	e.waitPod(c, podID, "running")

	b := newBrowserSession(t)
	b.signedIn(e, c)
	b.run("dashboard", chromedp.Navigate(e.url+"/dashboard/"), poll(`(document.querySelector(".pod") || {dataset: {}}).dataset.status === "running"`))
	time.Sleep(3 * time.Second) // past a polling loop's first look (2 s): its next is 15 s away
	res := e.api(c).Terminate(podID)
	require.Equal(t, http.StatusAccepted, res.Code, res)
	b.runWithin(6*time.Second, "pushed", poll(`["terminating", "terminated"].includes(document.querySelector(".pod").dataset.status)`))
}

// A browser without EventSource follows the pod by polling, as before.
func TestBrowserPodChangesPolledWithoutEventSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c, podID := e.signUp("polled@example.com")
	e.deploy(c, podID)
	e.waitPod(c, podID, "running")

	b := newBrowserSession(t)
	b.signedIn(e, c)
	require.NoError(t, chromedp.Do(b.ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		return tg.Call(ctx, "Page.addScriptToEvaluateOnNewDocument", map[string]string{"source": "delete window.EventSource"}, nil)
	})))
	b.run("dashboard", chromedp.Navigate(e.url+"/dashboard/"), poll(`(document.querySelector(".pod") || {dataset: {}}).dataset.status === "running"`))
	require.Equal(t, "undefined", value[string](b, `typeof EventSource`))
	res := e.api(c).Terminate(podID)
	require.Equal(t, http.StatusAccepted, res.Code, res)
	b.run("polled", poll(`["terminating", "terminated"].includes(document.querySelector(".pod").dataset.status)`))
}

// Shutting the process down ends its event streams at once: http.Server.Shutdown waits for
// every request, and a stream would not end by itself.
func TestShutdownEndsPodEventStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c, podID := e.signUp("shutdown@example.com")
	req, err := http.NewRequest("GET", e.url+"/api/pods/"+podID+"/events", nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "retry: "), line)

	ended := make(chan struct{})
	go func() {
		defer close(ended)
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, e.m.Close(ctx))
	require.Less(t, time.Since(start), 5*time.Second, "Close waited for the stream")
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream outlived the process's shutdown")
	}
}
