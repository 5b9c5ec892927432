package postgres_test

import (
	"context"
	"errors"
	"net"
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
}
