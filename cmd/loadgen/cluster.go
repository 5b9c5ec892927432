package main

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

// cluster is a throwaway PostgreSQL cluster with the server's default durability (fsync and
// synchronous_commit on): the figures are about commits that survive a power cut, so the dev
// cluster's fsync=off would measure the wrong thing.
type cluster struct {
	bin, dir, data string
	port           int
	asPostgres     bool // running as root: the server runs as the postgres user
}

// pgBin is the newest /usr/lib/postgresql/<version>/bin.
func pgBin() (string, error) {
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

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// pgCmd runs a PostgreSQL program, as the postgres user when we are root (the server refuses
// to run as root), from / so that user never needs to enter our working directory.
func (c *cluster) pgCmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.asPostgres {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = "/"
	return cmd
}

func run(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out.String())
	}
	return nil
}

// startCluster creates and starts a cluster in a new temporary directory.
func startCluster(maxConns int) (*cluster, error) {
	bin, err := pgBin()
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, asPostgres: os.Getuid() == 0}
	if c.dir, err = os.MkdirTemp("", "gpubroker-load-"); err != nil {
		return nil, err
	}
	if c.asPostgres {
		// mktemp directories are mode 700; the postgres user must be able to enter ours. When
		// it still cannot (a private TMPDIR), the cluster goes under /var/tmp, as scripts/pg.sh does.
		_ = os.Chmod(c.dir, 0o755)
		if exec.Command("runuser", "-u", "postgres", "--", "test", "-x", c.dir).Run() != nil {
			_ = os.RemoveAll(c.dir)
			if c.dir, err = os.MkdirTemp("/var/tmp", "gpubroker-load-"); err != nil {
				return nil, err
			}
			_ = os.Chmod(c.dir, 0o755)
		}
	}
	c.data = filepath.Join(c.dir, "data")
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
		_ = os.Chown(c.dir, uid, gid) // the server log lives here too
	}
	if err := run(c.pgCmd("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")); err != nil {
		return c, err
	}
	if c.port, err = freePort(); err != nil {
		return c, err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=%d -c fsync=on -c synchronous_commit=on -c full_page_writes=on",
		c.port, c.data, maxConns)
	if err := run(c.pgCmd("pg_ctl", "-D", c.data, "-l", filepath.Join(c.dir, "postgres.log"), "-w", "-t", "60", "start", "-o", opts)); err != nil {
		return c, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.url("postgres"))
	if err != nil {
		return c, err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE gpubroker")
	return c, err
}

func (c *cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// postmasterPID reads the server's pid from postmaster.pid.
func (c *cluster) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	return pid
}

// stop stops the server and removes its directory (unless keep).
func (c *cluster) stop(keep bool) {
	if c == nil || c.dir == "" {
		return
	}
	if _, err := os.Stat(filepath.Join(c.data, "postmaster.pid")); err == nil {
		_ = run(c.pgCmd("pg_ctl", "-D", c.data, "-m", "fast", "-w", "stop"))
	}
	if keep {
		fmt.Fprintf(os.Stderr, "loadgen: cluster kept in %s\n", c.dir)
		return
	}
	_ = os.RemoveAll(c.dir)
}
