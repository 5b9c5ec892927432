// Package postgres is GPU Broker's storage: the pgx pool, migrations (goose for ours,
// rivermigrate for River's), a transaction helper and the queries behind every state change.
// Transitions are guarded in SQL (UPDATE … WHERE status = <expected>) so a duplicated or late
// job can never move a state backwards.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"gpubroker"
	"gpubroker/migrations"
)

// Querier is what the queries need: a pool or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// DefaultMaxConns is the pool size when DATABASE_URL sets no pool_max_conns.
const DefaultMaxConns = 16

// Open connects a pool and checks that the database answers.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("error parsing DATABASE_URL: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgxpool's default, max(4, CPUs), lets a 2-CPU API task commit only 4 webhooks at a
		// time: the others queue for a connection while Postgres could have flushed them in the
		// same WAL write (make load: 0.5 of raw at 8 senders with 4, 0.8 with more).
		cfg.MaxConns = max(cfg.MaxConns, DefaultMaxConns)
	}
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		// Every statement of ours reads few rows through an index, but on tables of millions
		// the planner's estimates pass jit_above_cost, and compiling then takes longer than
		// the query: JIT doubled or tripled the ops pages' statements at SCALE=10 (GetTallies
		// 1,165 ms with 392 functions compiled). DATABASE_URL may still turn it on (jit=on).
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("error opening database: %w", err)
	}
	// A database that is restarting (a failover, a crash) is waited for, up to StartupWait, so a
	// process started meanwhile does not exit and flap; one that refuses us (a wrong password
	// or database name) fails at once.
	deadline, wait := time.Now().Add(StartupWait), 100*time.Millisecond
	for {
		err = pool.Ping(ctx)
		if err == nil || !Unavailable(err) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("error connecting to database: %w", err)
	}
	return pool, nil
}

// StartupWait is how long Open waits for a database that cannot be reached.
const StartupWait = time.Minute

// Tx runs fn in a transaction, committing when it returns nil.
func Tx(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, fn)
}

// Beginner can begin a transaction: a pool or a connection, not a transaction.
type Beginner interface {
	Begin(context.Context) (pgx.Tx, error)
}

// Migrate applies our migrations and River's, idempotently. A Postgres advisory lock makes
// concurrent runs (several api processes starting at once) safe.
func Migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("error creating migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("error loading migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("error applying migrations: %w", err)
	}
	for _, r := range results {
		logger.Info("migration applied", "source", r.Source.Path, "duration", r.Duration)
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("error creating river migrator: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("error applying river migrations: %w", err)
	}
	for _, v := range res.Versions {
		logger.Info("river migration applied", "version", v.Version)
	}
	return nil
}

// isUniqueViolation reports whether err is a unique constraint violation.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// notFound turns pgx.ErrNoRows into a domain ENOTFOUND error. A key Postgres cannot even
// compare (not a uuid, a NUL byte, invalid UTF-8: SQLSTATE class 22) names nothing we store
// either, so it is ENOTFOUND too: "no such order" is the honest answer to a lookup by a
// foreign client_reference_id or a hostile session id, and nobody retries it.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) || InvalidInput(err) {
		return gpubroker.Errorf(gpubroker.ENOTFOUND, "not_found", "%s not found", what)
	}
	return err
}
