// Package gbproc runs the gpubroker binary for the tools that drive the production processes
// (cmd/loadgen, internal/chaos): it migrates a database, starts a mode on a loopback port and
// waits until it answers, and stops it gracefully or kills it.
package gbproc

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gpubroker/cmd/internal/pgcluster"
)

// Migrate runs `bin migrate` against dbURL.
func Migrate(ctx context.Context, bin, dbURL string) error {
	cmd := exec.CommandContext(ctx, bin, "migrate")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + dbURL, "LOG_LEVEL=warn"}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("gpubroker migrate: %w\n%s", err, out)
	}
	return nil
}

// Run runs `bin mode` to completion with env on top of PATH and HOME (the migrate task), and
// returns its combined output; a failure names the exit status and holds the output.
func Run(ctx context.Context, bin, mode string, env []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, mode)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("gpubroker %s: %w\n%s", mode, err, out)
	}
	return out, nil
}

// startWait bounds how long a process may take to answer Ready, and a graceful stop.
const startWait = 30 * time.Second

// Proc is one gpubroker process (`Bin Mode`), started and stopped as often as its user likes.
// Its output goes to LogPath, appended across starts.
type Proc struct {
	Name, Mode, Bin, LogPath string
	// Env is added to PATH, HOME and ADDR.
	Env []string
	// Port is where it listens on 127.0.0.1; 0 picks a free port at each Start.
	Port int
	// Ready is the path that answers 200 once it serves ("" is /healthz).
	Ready string
	// Header is sent with the Ready probe (the api's ORIGIN_SECRET header, which every path
	// but /healthz needs).
	Header http.Header

	mu       sync.Mutex
	cmd      *exec.Cmd
	url      string
	expected bool          // the current process is being killed or stopped by us
	done     chan struct{} // closed when the current process has exited
	exitErr  error         // how the current process exited (after done)
	// unexpected collects exits nobody asked for (a crash on a database restart would be a bug).
	unexpected []string
}

// URL is where the current process listens ("" before Start).
func (p *Proc) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.url
}

// Pid is the current process's id (0 before Start), for reading its CPU time.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Start runs the process and waits until it answers Ready with 200. A process that does not
// answer in time is left running (it may still come up): Stop or Kill it if it must not.
func (p *Proc) Start(ctx context.Context) error {
	port := p.Port
	if port == 0 {
		var err error
		if port, err = pgcluster.FreePort(); err != nil {
			return err
		}
	}
	log, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.Bin, p.Mode)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "ADDR=127.0.0.1:" + strconv.Itoa(port)}, p.Env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.url, p.expected, p.done = cmd, fmt.Sprintf("http://127.0.0.1:%d", port), false, done
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		log.Close()
		p.mu.Lock()
		p.exitErr = err
		if !p.expected {
			p.unexpected = append(p.unexpected, fmt.Sprintf("%s exited on its own: %v (see %s)", p.Name, err, p.LogPath))
		}
		p.mu.Unlock()
		close(done)
	}()
	ready := p.Ready
	if ready == "" {
		ready = "/healthz"
	}
	deadline := time.Now().Add(startWait)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+ready, nil)
		if err != nil {
			return err
		}
		for k, v := range p.Header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			p.mu.Lock()
			exitErr := p.exitErr
			p.mu.Unlock()
			return fmt.Errorf("%s exited while starting (%v; see %s):\n%s", p.Name, exitErr, p.LogPath, tail(p.LogPath, 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer %s within %s (see %s)", p.Name, ready, startWait, p.LogPath)
		}
	}
}

// tail is the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(string(bytes.TrimRight(b, "\n")), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Kill sends SIGKILL (no graceful shutdown: jobs in flight are left running in the database)
// and waits for the process to go.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL) }

// Stop asks the process to shut down gracefully, killing it after 30 s.
func (p *Proc) Stop() { p.signal(syscall.SIGTERM) }

func (p *Proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.expected = true
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(startWait):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Exited reports whether the current process has exited (or none was started).
func (p *Proc) Exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Crashes lists the exits nobody asked for.
func (p *Proc) Crashes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unexpected...)
}
