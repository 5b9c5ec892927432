package postgres

import (
	"context"
	"encoding/json"
)

// AuditEvent is one line of the audit log. Empty ids are stored as NULL.
type AuditEvent struct {
	AccountID, OrderID, PodID string
	Action                    string
	Detail                    map[string]any
}

// Audit appends to the audit log, in the caller's transaction so the log never disagrees with
// the state it describes.
func Audit(ctx context.Context, q Querier, e AuditEvent) error {
	detail, err := json.Marshal(e.Detail)
	if err != nil {
		return err
	}
	if e.Detail == nil {
		detail = []byte("{}")
	}
	_, err = q.Exec(ctx, `INSERT INTO audit_events (account_id, order_id, pod_id, action, detail)
		VALUES (NULLIF($1, '')::uuid, NULLIF($2, '')::uuid, NULLIF($3, '')::uuid, $4, $5)`,
		e.AccountID, e.OrderID, e.PodID, e.Action, detail)
	return err
}
