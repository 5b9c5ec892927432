// Package pgcluster runs a throwaway PostgreSQL cluster in a temporary directory with the
// machine's server binaries, for the tools that need a server of their own: make load (a
// durable cluster, so commits are measured as production makes them) and make chaos (a
// cluster it can restart under the running processes). As root the server runs as the
// postgres user, which PostgreSQL requires.
package pgcluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options configure a cluster.
type Options struct {
	// Prefix names the temporary directory ("gpubroker-load-").
	Prefix string
	// MaxConns is max_connections; zero leaves the server's default.
	MaxConns int
	// Settings are more server settings, name=value each (make scale: the slow-statement log,
	// auto_explain, pg_stat_statements).
	Settings []string
}

// Cluster is a running throwaway cluster with a database named gpubroker.
type Cluster struct {
	Bin  string // the PostgreSQL binaries
	Dir  string // the temporary directory: data/, postgres.log and whatever the caller puts there
	Port int

	data       string
	opts       string
	asPostgres bool
	// reopened: a cluster an earlier run kept (Reopen), whose Stop always keeps it and whose
	// server gets pg_ctl's long wait (a big cluster's checkpoint and recovery take minutes).
	reopened bool
}

// binDir is the newest /usr/lib/postgresql/<version>/bin.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if len(dirs) == 0 {
		return "", fmt.Errorf("no PostgreSQL binaries under /usr/lib/postgresql (apt-get install postgresql)")
	}
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) < version(dirs[j]) })
	return dirs[len(dirs)-1], nil
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// command runs a PostgreSQL program, as the postgres user when we are root (the server refuses
// to run as root), from / so that user never needs to enter our working directory.
func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.Bin, name)
	var cmd *exec.Cmd
	if c.asPostgres {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = "/"
	return cmd
}

// run runs cmd and returns its output in the error when it fails.
func run(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out.String())
	}
	return nil
}

// Start creates and starts a cluster in a new temporary directory. On error the returned
// cluster (possibly nil) still needs Stop.
func Start(o Options) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	if o.Prefix == "" {
		o.Prefix = "gpubroker-pg-"
	}
	c := &Cluster{Bin: bin, asPostgres: os.Getuid() == 0}
	if c.Dir, err = os.MkdirTemp("", o.Prefix); err != nil {
		return nil, err
	}
	if c.asPostgres {
		// mktemp directories are mode 700; the postgres user must be able to enter ours. When
		// it still cannot (a private TMPDIR), the cluster goes under /var/tmp, as scripts/pg.sh does.
		_ = os.Chmod(c.Dir, 0o755)
		if exec.Command("runuser", "-u", "postgres", "--", "test", "-x", c.Dir).Run() != nil {
			_ = os.RemoveAll(c.Dir)
			if c.Dir, err = os.MkdirTemp("/var/tmp", o.Prefix); err != nil {
				return nil, err
			}
			_ = os.Chmod(c.Dir, 0o755)
		}
	}
	c.data = filepath.Join(c.Dir, "data")
	if err := os.Mkdir(c.data, 0o700); err != nil {
		return c, err
	}
	if c.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			return c, fmt.Errorf("running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.data, uid, gid); err != nil {
			return c, err
		}
		_ = os.Chown(c.Dir, uid, gid) // the server log lives here too
	}
	if err := run(c.command("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")); err != nil {
		return c, err
	}
	if err := c.configure(o); err != nil {
		return c, err
	}
	if err := c.start(); err != nil {
		return c, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return c, err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE gpubroker")
	return c, err
}

// Reopen starts again, on a new port with o's settings, the cluster an earlier run kept in dir
// (Stop(true)). Its Stop keeps the directory whatever it is told: this run did not create it.
func Reopen(dir string, o Options) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Bin: bin, Dir: dir, data: filepath.Join(dir, "data"), asPostgres: os.Getuid() == 0, reopened: true}
	if _, err := os.Stat(filepath.Join(c.data, "PG_VERSION")); err != nil {
		return nil, fmt.Errorf("%s is no kept cluster (no data/PG_VERSION): %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(c.data, "postmaster.pid")); err == nil {
		return nil, fmt.Errorf("%s: a server is running on it (or crashed: remove data/postmaster.pid)", dir)
	}
	if err := c.configure(o); err != nil {
		return nil, err
	}
	if err := c.start(); err != nil {
		return nil, err
	}
	return c, nil
}

// configure picks the server's port and its command-line settings.
func (c *Cluster) configure(o Options) error {
	var err error
	if c.Port, err = FreePort(); err != nil {
		return err
	}
	// Durable, as production is: load measures real commits and chaos crashes the server.
	c.opts = fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c full_page_writes=on", c.Port, c.data)
	if o.MaxConns > 0 {
		c.opts += fmt.Sprintf(" -c max_connections=%d", o.MaxConns)
	}
	for _, kv := range o.Settings {
		c.opts += " -c " + kv
	}
	return nil
}

// wait is how long pg_ctl waits for the server to start or stop, in seconds.
func (c *Cluster) wait() string {
	if c.reopened {
		return "600"
	}
	return "60"
}

func (c *Cluster) start() error {
	return run(c.command("pg_ctl", "-D", c.data, "-l", filepath.Join(c.Dir, "postgres.log"), "-w", "-t", c.wait(), "start", "-o", c.opts))
}

// URL is the URL of database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// PostmasterPID reads the server's pid from postmaster.pid.
func (c *Cluster) PostmasterPID() int {
	b, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	return pid
}

// Crash stops the server as a crash would (pg_ctl -m immediate: no checkpoint, every
// connection cut; the next start replays the WAL) and starts it again on the same port after
// down.
func (c *Cluster) Crash(down time.Duration) error {
	if err := run(c.command("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop")); err != nil {
		return err
	}
	time.Sleep(down)
	return c.start()
}

// Stop stops the server and removes its directory (unless keep, for its logs).
func (c *Cluster) Stop(keep bool) {
	if c == nil || c.Dir == "" {
		return
	}
	if _, err := os.Stat(filepath.Join(c.data, "postmaster.pid")); err == nil {
		if err := run(c.command("pg_ctl", "-D", c.data, "-m", "fast", "-w", "-t", c.wait(), "stop")); err != nil && c.reopened {
			fmt.Fprintln(os.Stderr, "pgcluster:", err)
		}
	}
	if keep || c.reopened {
		fmt.Fprintf(os.Stderr, "pgcluster: kept in %s\n", c.Dir)
		return
	}
	_ = os.RemoveAll(c.Dir)
}
