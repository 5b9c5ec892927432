// Package ready decides whether a pod is usable by its customer, which is when its paid time
// starts. A provider's "running" (Lambda's active, RunPod's RUNNING) is not that: it comes
// before cloud-init has installed the IDE, and a RunPod pod whose image cannot be pulled never
// gets a runtime at all. So the worker checks for itself, through the very addresses the
// customer is shown:
//
//   - SSH (when the customer has a key on the pod): the server sends an SSH-2.0 banner and
//     completes a key exchange (x/crypto/ssh), which proves an sshd, not just an open port or
//     a proxy, answers. No login is attempted: we hold none of the customer's keys.
//   - The IDE answers its own status endpoint: Jupyter's /api/status with the pod's token,
//     code-server's /healthz.
package ready

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"gpubroker/gpu"
)

// Target is what the customer is shown, and so what must answer.
type Target struct {
	// SSHAddr is host:port of the SSH server shown, "" when the pod has none of the
	// customer's keys (nothing they could log in with, so nothing to wait for).
	SSHAddr string
	// IDE is gpu.IDEJupyter or gpu.IDECodeServer; URL is the IDE link shown (with a trailing
	// slash) and Secret its token (Jupyter) or password (code-server).
	IDE, URL, Secret string
}

// Checker checks targets. The zero value is ready to use.
type Checker struct {
	// HTTP fetches the IDE's status; nil means a client with Timeout.
	HTTP *http.Client
	// Timeout bounds each check (the SSH handshake, the IDE request); 0 means 10 s.
	Timeout time.Duration
}

// Check returns nil when everything the customer is shown answers, and otherwise an error
// saying what does not.
func (c *Checker) Check(ctx context.Context, t Target) error {
	var errs []error
	if t.SSHAddr != "" {
		if err := c.ssh(ctx, t.SSHAddr); err != nil {
			errs = append(errs, fmt.Errorf("ssh %s: %w", t.SSHAddr, err))
		}
	}
	if err := c.ide(ctx, t); err != nil {
		errs = append(errs, fmt.Errorf("%s %s: %w", t.IDE, t.URL, err))
	}
	return errors.Join(errs...)
}

func (c *Checker) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 10 * time.Second
}

// ssh completes a key exchange with the server at addr. The host key callback runs once the
// server has proven it holds its host key over the exchange: that is the proof; the login
// that follows (with no credentials) is expected to fail.
func (c *Checker) ssh(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	exchanged := false
	cfg := &ssh.ClientConfig{
		User: "gpubroker-readiness",
		HostKeyCallback: func(string, net.Addr, ssh.PublicKey) error {
			exchanged = true
			return nil
		},
		Timeout: c.timeout(),
	}
	sc, _, _, err := ssh.NewClientConn(conn, addr, cfg)
	if sc != nil {
		sc.Close()
	}
	if exchanged {
		return nil
	}
	if err == nil {
		err = errors.New("no key exchange")
	}
	return err
}

// ide asks the IDE's own status endpoint through the URL the customer is shown.
func (c *Checker) ide(ctx context.Context, t Target) error {
	if t.URL == "" {
		return errors.New("no IDE address")
	}
	// A link may carry its token (Lambda's jupyter_url ends in ?token=…): the status endpoint
	// is under the link's path, and the token goes in a header, never in the URL.
	base, err := url.Parse(t.URL)
	if err != nil {
		return err
	}
	base.RawQuery, base.Fragment = "", ""
	base.Path = strings.TrimRight(base.Path, "/") + "/"
	switch t.IDE {
	case gpu.IDEJupyter:
		base.Path += "api/status"
	case gpu.IDECodeServer:
		base.Path += "healthz"
	default:
		return fmt.Errorf("unknown IDE %q", t.IDE)
	}
	u := base.String()
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if t.IDE == gpu.IDEJupyter {
		req.Header.Set("Authorization", "token "+t.Secret) // never in the URL, which proxies log
	}
	client := c.HTTP
	if client == nil {
		client = &http.Client{Timeout: c.timeout()}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status endpoint answered %d", resp.StatusCode)
	}
	return nil
}
