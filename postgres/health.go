package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// The pod health watch's batch statements: a pass over thousands of running pods notes its
// findings in three statements, whatever the fleet's size: two dead checks in a row fail a pod,
// a healthy one clears its count.

// ClearHealthFailures records a healthy check of each of the running pods: their count of dead
// checks in a row starts again. Pods no longer running, or with nothing to clear, are left
// untouched.
func ClearHealthFailures(ctx context.Context, q Querier, podIDs []string) error {
	if len(podIDs) == 0 {
		return nil
	}
	_, err := q.Exec(ctx, `UPDATE pods SET health_failures = 0, health_failed_since = NULL
		WHERE id = ANY($1::uuid[]) AND status = 'running' AND health_failures > 0`, podIDs)
	return err
}

// DeadChecks is a running pod's count of dead checks in a row and when the first of them ran.
type DeadChecks struct {
	N     int
	Since time.Time
}

// NoteDeadChecks records a dead check of each of the running pods and returns their counts by
// pod id; a pod no longer running changes nothing and is left out.
func NoteDeadChecks(ctx context.Context, q Querier, podIDs []string, now time.Time) (map[string]DeadChecks, error) {
	out := map[string]DeadChecks{}
	if len(podIDs) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `UPDATE pods SET health_failures = health_failures + 1, health_failed_since = COALESCE(health_failed_since, $2)
		WHERE id = ANY($1::uuid[]) AND status = 'running' RETURNING id::text, health_failures, health_failed_since`, podIDs, now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var c DeadChecks
		if err := rows.Scan(&id, &c.N, &c.Since); err != nil {
			return nil, err
		}
		out[id] = c
	}
	return out, rows.Err()
}

// HealthPass is one pass of the pod health watch (pod_health_pass).
type HealthPass struct {
	StartedAt time.Time
	// Seconds is how long the pass took, from reading the running pods to noting the last
	// finding (the deaths it handled included).
	Seconds float64
	// Pods are the running pods the pass looked at: Healthy + Dead + Unknown.
	Pods, Healthy, Dead, Unknown int
	// ListCalls are the ListInstances calls made: one per provider with running pods.
	ListCalls int
	// FailedProviders could not list their instances (their pods are among Unknown), by name.
	FailedProviders []string
}

// RecordHealthPass stores p as the last pass, replacing the one before.
func RecordHealthPass(ctx context.Context, q Querier, p HealthPass) error {
	if p.FailedProviders == nil {
		p.FailedProviders = []string{}
	}
	_, err := q.Exec(ctx, `INSERT INTO pod_health_pass (started_at, seconds, pods, healthy, dead, unknown, list_calls, failed_providers)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (only_row) DO UPDATE SET started_at = EXCLUDED.started_at, seconds = EXCLUDED.seconds, pods = EXCLUDED.pods,
			healthy = EXCLUDED.healthy, dead = EXCLUDED.dead, unknown = EXCLUDED.unknown, list_calls = EXCLUDED.list_calls,
			failed_providers = EXCLUDED.failed_providers`,
		p.StartedAt, p.Seconds, p.Pods, p.Healthy, p.Dead, p.Unknown, p.ListCalls, p.FailedProviders)
	return err
}

// LastHealthPass returns the last pass of the pod health watch, or nil before the first: what
// the ops collector exports (gpubroker_pod_health_pass_seconds and its age).
func LastHealthPass(ctx context.Context, q Querier) (*HealthPass, error) {
	var p HealthPass
	err := q.QueryRow(ctx, `SELECT started_at, seconds, pods, healthy, dead, unknown, list_calls, failed_providers FROM pod_health_pass`).
		Scan(&p.StartedAt, &p.Seconds, &p.Pods, &p.Healthy, &p.Dead, &p.Unknown, &p.ListCalls, &p.FailedProviders)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}
