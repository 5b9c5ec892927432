package postgres_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/internal/testdb"
	"gpubroker/postgres"
)

// ClassifyError on the errors a real server and a real pool produce.
func TestClassifyError(t *testing.T) {
	ctx := context.Background()
	pool, url := testdb.NewWithURL(t)
	code := func(err error) string {
		t.Helper()
		require.Error(t, err)
		return gpubroker.ErrorCode(postgres.ClassifyError(err))
	}
	exec := func(sql string, args ...any) error {
		_, err := pool.Exec(ctx, sql, args...)
		return err
	}

	require.NoError(t, postgres.ClassifyError(nil))
	domain := gpubroker.Errorf(gpubroker.ECONFLICT, "trial_used", "used")
	require.Same(t, domain, postgres.ClassifyError(domain))

	// Input Postgres refuses: the client's mistake.
	require.Equal(t, gpubroker.EBADREQUEST, code(exec(`SELECT $1::uuid`, "ord_foreign")), "22P02")
	require.Equal(t, gpubroker.EBADREQUEST, code(exec(`SELECT $1::text`, "a\x00b")), "22021 NUL")
	require.Equal(t, gpubroker.EBADREQUEST, code(exec(`SELECT $1::text`, "a\xffb")), "22021 invalid UTF-8")
	require.Equal(t, gpubroker.EBADREQUEST, code(exec(`SELECT $1::jsonb`, `{"a":"\u0000"}`)), "22P05")
	require.Equal(t, gpubroker.EBADREQUEST, code(exec(`SELECT 2147483647::int + 1`)), "22003")

	// Bugs: 500.
	require.Equal(t, gpubroker.EINTERNAL, code(exec(`SELEC 1`)), "42601")
	require.Equal(t, gpubroker.EINTERNAL, code(exec(`SELECT * FROM no_such_table`)), "42P01")
	require.Equal(t, gpubroker.EINTERNAL, code(errors.New("something else")))
	require.Equal(t, gpubroker.ENOTFOUND, code(pool.QueryRow(ctx, `SELECT 1 WHERE false`).Scan(new(int))))

	// Outages: 503.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := pool.Exec(short, `SELECT pg_sleep(5)`)
	require.Equal(t, gpubroker.EUNAVAILABLE, code(err), "deadline: %v", err)

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
	require.Equal(t, gpubroker.EUNAVAILABLE, code(err), "57P01: %v", err)
	_, err = conn.Exec(ctx, `SELECT 1`)
	require.Equal(t, gpubroker.EUNAVAILABLE, code(err), "closed connection: %v", err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	ln.Close()
	_, err = pgx.Connect(ctx, "postgres://x@"+dead+"/x?sslmode=disable&connect_timeout=2")
	require.Equal(t, gpubroker.EUNAVAILABLE, code(err), "connect: %v", err)

	closed, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	closed.Close()
	require.Equal(t, gpubroker.EUNAVAILABLE, code(closed.QueryRow(ctx, `SELECT 1`).Scan(new(int))), "closed pool")

	// The server dies mid-answer (a crash: no error message, the socket ends inside a
	// message), as make chaos does to it: pgx says "unexpected EOF", a 500 before.
	cut := cuttingProxy(t, url)
	viaProxy, err := pgxpool.New(ctx, cut.url)
	require.NoError(t, err)
	defer viaProxy.Close()
	require.NoError(t, viaProxy.Ping(ctx))
	cut.arm()
	_, err = viaProxy.Exec(ctx, `SELECT repeat('x', 1000000)`)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.Equal(t, gpubroker.EUNAVAILABLE, code(err), "connection cut mid-answer: %v", err)
}

// proxy forwards TCP connections to the database; once armed, it passes on half of the next
// chunk the server sends and drops the connection, as a crashing server does.
type proxy struct {
	url   string
	armed atomic.Bool
}

func cuttingProxy(t *testing.T, dbURL string) *proxy {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	p := &proxy{}
	go p.serve(ln, u.Host)
	u.Host = ln.Addr().String()
	p.url = u.String()
	return p
}

// serve forwards every connection ln accepts to target until ln is closed.
func (p *proxy) serve(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			continue
		}
		go func() { _, _ = io.Copy(s, c) }()
		go func() {
			defer c.Close()
			defer s.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if n > 1 && p.armed.Load() {
					_, _ = c.Write(buf[:n/2])
					return
				}
				if n > 0 {
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func (p *proxy) arm() { p.armed.Store(true) }

// A process that starts while its database restarts (a deploy during a failover, a worker
// restarted during make chaos's crash) waits for it instead of exiting; a database that
// refuses us for good (a wrong name) fails at once.
func TestOpenWaitsForTheDatabase(t *testing.T) {
	ctx := context.Background()
	_, dbURL := testdb.NewWithURL(t)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	late := ln.Addr().String()
	ln.Close() // nothing listens there yet: connection refused
	go func() {
		time.Sleep(700 * time.Millisecond)
		ln, err := net.Listen("tcp", late)
		if err != nil {
			return
		}
		t.Cleanup(func() { ln.Close() })
		(&proxy{}).serve(ln, target)
	}()
	u.Host = late
	pool, err := postgres.Open(ctx, u.String())
	require.NoError(t, err, "the database came up 0.7 s after the process")
	pool.Close()

	u.Host, u.Path = target, "/no_such_database"
	start := time.Now()
	_, err = postgres.Open(ctx, u.String())
	require.Error(t, err)
	require.Less(t, time.Since(start), 5*time.Second, "a refusal is not waited on")
}
