package postgres

import (
	"context"
	"encoding/json"
	"gpubroker"
)

// AuditEvent is one line of the audit log. Empty ids are stored as NULL.
type AuditEvent struct {
	AccountID, OrderID, PodID string
	Action                    gpubroker.AuditAction
	Detail                    map[string]any
}

// Audit appends to the audit log, in the caller's transaction so the log never disagrees with
// the state it describes.
func Audit(ctx context.Context, q Querier, e AuditEvent) error {
	_, err := AuditReturningID(ctx, q, e)
	return err
}

// AuditReturningID appends to the audit log like Audit and returns the event's id, for an
// event that aggregates later occurrences (UpdateAuditDetail).
func AuditReturningID(ctx context.Context, q Querier, e AuditEvent) (int64, error) {
	detail, err := json.Marshal(e.Detail)
	if err != nil {
		return 0, err
	}
	if e.Detail == nil {
		detail = []byte("{}")
	}
	var id int64
	err = q.QueryRow(ctx, `INSERT INTO audit_events (account_id, order_id, pod_id, action, detail)
		VALUES (NULLIF($1, '')::uuid, NULLIF($2, '')::uuid, NULLIF($3, '')::uuid, $4, $5) RETURNING id`,
		e.AccountID, e.OrderID, e.PodID, e.Action, detail).Scan(&id)
	return id, err
}

// UpdateAuditDetail replaces an aggregating event's detail (its count so far).
func UpdateAuditDetail(ctx context.Context, q Querier, id int64, detail map[string]any) error {
	b, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `UPDATE audit_events SET detail = $2 WHERE id = $1`, id, b)
	return err
}
