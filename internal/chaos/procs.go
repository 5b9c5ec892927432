package chaos

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"gpubroker/internal/pgcluster"
)

// proc is one gpubroker process (api or worker) that the run kills and restarts. Its log
// goes to <dir>/<name>.log, appended across restarts.
type proc struct {
	name, mode, bin, dir string
	env                  []string

	mu       sync.Mutex
	cmd      *exec.Cmd
	url      string
	expected bool          // the current process is being killed or stopped by us
	done     chan struct{} // closed when the current process has exited
	// unexpected collects exits nobody asked for (a crash on a database restart would be a bug).
	unexpected []string
}

func (p *proc) logPath() string { return filepath.Join(p.dir, p.name+".log") }

// start runs the process and waits until it answers /healthz.
func (p *proc) start(ctx context.Context) error {
	port, err := pgcluster.FreePort()
	if err != nil {
		return err
	}
	log, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.mode)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "ADDR=127.0.0.1:" + strconv.Itoa(port)}, p.env...)
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
		if !p.expected {
			p.unexpected = append(p.unexpected, fmt.Sprintf("%s exited on its own: %v (see %s)", p.name, err, p.logPath()))
		}
		p.mu.Unlock()
		close(done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited while starting (see %s)", p.name, p.logPath())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer /healthz within 30 s (see %s)", p.name, p.logPath())
		}
	}
}

// kill sends SIGKILL (no graceful shutdown: jobs in flight are left running in the database)
// and waits for the process to go.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
}

// stop asks the process to shut down gracefully, killing it after 30 s.
func (p *proc) stop() {
	p.signal(syscall.SIGTERM)
}

func (p *proc) signal(sig syscall.Signal) {
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
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// exited reports whether the current process has exited.
func (p *proc) exited() bool {
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

func (p *proc) crashes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unexpected...)
}
