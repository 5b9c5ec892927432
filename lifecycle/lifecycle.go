// Package lifecycle is the business layer: one named, transactional operation per thing that
// can happen to a pod, called by the api (a customer's click) and by the workers (an outside
// service's answer) alike. An operation runs in its caller's transaction: it locks what it
// changes, checks its preconditions and returns the domain error (gpubroker.Error), moves the
// status through the transition table, whose entry names the audit action (so a move and its
// audit entry cannot drift apart), and enqueues the follow-up job (package tasks).
//
// Handlers parse, call an operation and encode; workers ask the outside service, then call one.
package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"gpubroker"
	"gpubroker/postgres"
)

// Inserter enqueues a job in the caller's transaction (a River client).
type Inserter interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// MovePod moves a locked pod from one status to another (or updates it within one, from == to)
// and writes the audit entry the transition table names for the move, with detail, in tx. It
// reports false, changing and auditing nothing, when the pod is not in status from.
func MovePod(ctx context.Context, tx pgx.Tx, pod *gpubroker.Pod, from, to gpubroker.PodStatus, u gpubroker.PodUpdate, detail map[string]any) (bool, error) {
	action, ok := gpubroker.PodMoveAction(from, to)
	if !ok {
		return false, fmt.Errorf("pod transition %s -> %s is not in the table", from, to)
	}
	moved, err := postgres.MovePod(ctx, tx, pod.ID, from, to, u)
	if err != nil || !moved {
		return moved, err
	}
	acct := ""
	if pod.AccountID != nil {
		acct = *pod.AccountID
	}
	return true, postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: acct, OrderID: pod.OrderID, PodID: pod.ID, Action: action, Detail: detail})
}

// MoveOrder moves an order from one status to another, setting the status's timestamp, and
// writes the audit entry the order transition table names for the move (with the pod, when
// one is given, and detail), in tx. It reports false, changing and auditing nothing, when the
// order is not in status from.
func MoveOrder(ctx context.Context, tx pgx.Tx, o *gpubroker.Order, podID string, from, to gpubroker.OrderStatus, at time.Time, detail map[string]any) (bool, error) {
	action, ok := gpubroker.OrderMoveAction(from, to)
	if !ok {
		return false, fmt.Errorf("order transition %s -> %s is not in the table", from, to)
	}
	moved, err := postgres.MoveOrder(ctx, tx, o.ID, from, to, at)
	if err != nil || !moved {
		return moved, err
	}
	return true, auditOrder(ctx, tx, o, podID, action, detail)
}

// AuthorizeOrder records the card hold on a checkout_pending order (postgres.AuthorizeOrder:
// its PaymentIntent, session and hold deadline) and audits it, in tx; false when the order was
// not checkout_pending (a duplicate or late event), changing nothing.
func AuthorizeOrder(ctx context.Context, tx pgx.Tx, o *gpubroker.Order, sessionID, piID string, at, holdDeadline time.Time, detail map[string]any) (bool, error) {
	moved, err := postgres.AuthorizeOrder(ctx, tx, o.ID, sessionID, piID, at, holdDeadline)
	if err != nil || !moved {
		return moved, err
	}
	action, _ := gpubroker.OrderMoveAction(gpubroker.OrderCheckoutPending, gpubroker.OrderAuthorized)
	return true, auditOrder(ctx, tx, o, "", action, detail)
}

func auditOrder(ctx context.Context, tx pgx.Tx, o *gpubroker.Order, podID string, action gpubroker.AuditAction, detail map[string]any) error {
	acct := ""
	if o.AccountID != nil {
		acct = *o.AccountID
	}
	return postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: acct, OrderID: o.ID, PodID: podID, Action: action, Detail: detail})
}
