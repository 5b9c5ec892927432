package httpjson

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// One request carries the key and the JSON body; an error answer goes to the classifier with
// the path as the caller gave it.
func TestDo(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "Bearer k", r.Header.Get("Authorization"))
		if r.URL.Path == "/bad" {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		b, _ := io.ReadAll(r.Body)
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	var got string
	c := &Client{Name: "p", BaseURL: srv.URL, APIKey: "k", HTTP: srv.Client(), Classify: func(method, path string, resp *http.Response, _ []byte) error {
		got = method + " " + path
		return errors.New("classified " + resp.Header.Get("Retry-After"))
	}}
	data, err := c.Do(context.Background(), "POST", "/echo", map[string]int{"a": 1})
	require.NoError(t, err)
	require.JSONEq(t, `{"a":1}`, string(data))
	_, err = c.Do(context.Background(), "GET", "/bad", nil)
	require.ErrorContains(t, err, "p: GET /bad: classified 7")
	require.Equal(t, "GET /bad", got)
	require.Equal(t, 7*time.Second, RetryAfter("7"))
	require.Zero(t, RetryAfter("soon"))
}

// An answer longer than its bound is an error that says so, never a body cut short; DoUpTo
// takes a longer one (a provider's list of every instance).
func TestAnswerBound(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`"` + strings.Repeat("x", MaxAnswer) + `"`))
	}))
	t.Cleanup(srv.Close)
	c := &Client{Name: "p", BaseURL: srv.URL, HTTP: srv.Client()}
	_, err := c.Do(context.Background(), "GET", "/list", nil)
	require.ErrorContains(t, err, "p: GET /list: answer longer than 4194304 bytes")
	data, err := c.DoUpTo(context.Background(), "GET", "/list", nil, MaxListAnswer)
	require.NoError(t, err)
	require.Len(t, data, MaxAnswer+2)
}
