// Package httpjson is the JSON-over-HTTP request the GPU provider clients share: a bearer key,
// a JSON body, an answer read up to a bound, and error answers handed to the provider's own
// classifier (each provider spells its errors differently; the plumbing is the same).
package httpjson

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxAnswer bounds what is read of an answer.
const MaxAnswer = 4 << 20

// MaxListAnswer bounds a list of every instance of an account in one answer (DoUpTo): a RunPod
// pod of ours is about 3 KB of JSON (its env carries the customer's keys twice), so 4 MiB held
// some 1,400 pods; 128 MiB holds tens of thousands.
const MaxListAnswer = 128 << 20

// Client sends requests to one API.
type Client struct {
	// Name prefixes every error ("lambda", "runpod").
	Name    string
	BaseURL string
	APIKey  string
	HTTP    *http.Client
	// Classify turns an answer with status 300 or more to method path into an error (of the
	// gpu classes).
	Classify func(method, path string, resp *http.Response, body []byte) error
}

// Do sends one request, with body encoded as JSON unless nil, and returns the answer's body
// for a status below 300. An answer over MaxAnswer is an error.
func (c *Client) Do(ctx context.Context, method, path string, body any) ([]byte, error) {
	return c.DoUpTo(ctx, method, path, body, MaxAnswer)
}

// DoUpTo is Do for an answer of up to limit bytes: longer is an error, never a body cut short
// (which would only fail later as JSON ending early).
func (c *Client) DoUpTo(ctx context.Context, method, path string, body any, limit int64) ([]byte, error) {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s: encode %s %s: %w", c.Name, method, path, err)
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, reader)
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", c.Name, method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.APIKey)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", c.Name, method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: read response: %w", c.Name, method, path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %s %s: answer longer than %d bytes (status %d)", c.Name, method, path, limit, resp.StatusCode)
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s: %s %s: %w", c.Name, method, path, c.Classify(method, path, resp, data))
	}
	return data, nil
}

// Snippet is the start of a non-JSON error body (a proxy's 502 page), for messages.
func Snippet(data []byte) string {
	s := strings.TrimSpace(string(data))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// RetryAfter parses a Retry-After header: seconds or an HTTP date. Zero when absent or bad.
func RetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
