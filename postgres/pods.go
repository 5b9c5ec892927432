package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
)

// Pod is a pod with the order fields the dashboard shows next to it.
type Pod struct {
	ID            string                `json:"id"`
	OrderID       string                `json:"order_id"`
	AccountID     *string               `json:"-"`
	Status        string                `json:"status"`
	Plan          string                `json:"plan"`
	GPU           string                `json:"gpu"`
	Region        string                `json:"region"`
	Hours         int                   `json:"hours"`
	Template      string                `json:"template"`
	HourlyCents   int64                 `json:"hourly_cents"`
	AmountCents   int64                 `json:"amount_cents"`
	Currency      string                `json:"currency"`
	OrderStatus   string                `json:"order_status"`
	HoldExpiresAt *time.Time            `json:"hold_expires_at"`
	Provider      *string               `json:"provider"`
	InstanceID    *string               `json:"-"`
	OfferID       *string               `json:"-"`
	FailedOffers  []string              `json:"-"`
	Connection    *gpubroker.Connection `json:"connection"`
	Error         *string               `json:"error"`
	CreatedAt     time.Time             `json:"created_at"`
	DeployedAt    *time.Time            `json:"deploy_requested_at"`
	CapturedAt    *time.Time            `json:"-"`
	StartedAt     *time.Time            `json:"started_at"`
	EndsAt        *time.Time            `json:"ends_at"`
	TerminatedAt  *time.Time            `json:"terminated_at"`
}

const podSelect = `SELECT p.id, p.order_id, p.account_id, p.status, o.plan, p.gpu, p.region, p.hours, p.template,
	o.hourly_cents, o.amount_cents, o.currency, o.status, o.hold_expires_at, p.provider, p.instance_id, p.offer_id, p.failed_offers,
	p.connection, p.error, p.created_at, p.deploy_requested_at, p.captured_at, p.started_at, p.ends_at, p.terminated_at
	FROM pods p JOIN orders o ON o.id = p.order_id`

func scanPod(row pgx.Row) (*Pod, error) {
	var p Pod
	var conn []byte
	err := row.Scan(&p.ID, &p.OrderID, &p.AccountID, &p.Status, &p.Plan, &p.GPU, &p.Region, &p.Hours, &p.Template,
		&p.HourlyCents, &p.AmountCents, &p.Currency, &p.OrderStatus, &p.HoldExpiresAt, &p.Provider, &p.InstanceID, &p.OfferID,
		&p.FailedOffers, &conn, &p.Error, &p.CreatedAt, &p.DeployedAt, &p.CapturedAt, &p.StartedAt, &p.EndsAt, &p.TerminatedAt)
	if err != nil {
		return nil, err
	}
	if conn != nil {
		p.Connection = &gpubroker.Connection{}
		if err := json.Unmarshal(conn, p.Connection); err != nil {
			return nil, err
		}
	}
	return &p, nil
}

// GetPod returns a pod by id.
func GetPod(ctx context.Context, q Querier, id string) (*Pod, error) {
	p, err := scanPod(q.QueryRow(ctx, podSelect+` WHERE p.id = $1`, uuidOrEmpty(id)))
	return p, notFound(err, "pod")
}

// GetAccountPod returns a pod owned by an account; any other pod is ENOTFOUND, so a caller
// cannot learn that another account's pod exists.
func GetAccountPod(ctx context.Context, q Querier, accountID, id string) (*Pod, error) {
	if uuidOrEmpty(id) == "" {
		return nil, gpubroker.Errorf(gpubroker.ENOTFOUND, "not_found", "pod not found")
	}
	p, err := scanPod(q.QueryRow(ctx, podSelect+` WHERE p.id = $1 AND p.account_id = $2`, id, accountID))
	return p, notFound(err, "pod")
}

// LockPod locks a pod row (and returns it) for the rest of the transaction, serializing
// concurrent deploy and terminate requests.
func LockPod(ctx context.Context, tx pgx.Tx, id string) (*Pod, error) {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM pods WHERE id = $1 FOR UPDATE`, uuidOrEmpty(id)); err != nil {
		return nil, err
	}
	return GetPod(ctx, tx, id)
}

// GetOrderPod returns the pod of an order.
func GetOrderPod(ctx context.Context, q Querier, orderID string) (*Pod, error) {
	p, err := scanPod(q.QueryRow(ctx, podSelect+` WHERE p.order_id = $1`, orderID))
	return p, notFound(err, "pod")
}

// ListAccountPods returns an account's pods, newest first.
func ListAccountPods(ctx context.Context, q Querier, accountID string) ([]*Pod, error) {
	rows, err := q.Query(ctx, podSelect+` WHERE p.account_id = $1 ORDER BY p.created_at DESC`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	pods := []*Pod{}
	for rows.Next() {
		p, err := scanPod(rows)
		if err != nil {
			return nil, err
		}
		pods = append(pods, p)
	}
	return pods, rows.Err()
}

// MovePod moves a pod between statuses, reporting false (and changing nothing) when it is not
// in status from. The set map adds column updates in the same statement.
func MovePod(ctx context.Context, tx pgx.Tx, id, from, to string, set map[string]any) (bool, error) {
	sql := `UPDATE pods SET status = $3`
	args := []any{id, from, to}
	for _, col := range podColumns {
		if v, ok := set[col]; ok {
			args = append(args, v)
			sql += `, ` + col + ` = $` + itoa(len(args))
		}
	}
	tag, err := tx.Exec(ctx, sql+` WHERE id = $1 AND status = $2`, args...)
	return tag.RowsAffected() == 1, err
}

// podColumns are the columns MovePod may set, in a fixed order (never user input).
var podColumns = []string{"provider", "instance_id", "offer_id", "cost_cents_per_hour", "connection", "error",
	"deploy_requested_at", "captured_at", "launched_at", "started_at", "ends_at", "terminated_at"}

// UpdatePod sets columns of a pod without a status change (e.g. the launched instance).
func UpdatePod(ctx context.Context, tx pgx.Tx, id string, set map[string]any) error {
	sql := `UPDATE pods SET id = id`
	args := []any{id}
	for _, col := range podColumns {
		if v, ok := set[col]; ok {
			args = append(args, v)
			sql += `, ` + col + ` = $` + itoa(len(args))
		}
	}
	_, err := tx.Exec(ctx, sql+` WHERE id = $1`, args...)
	return err
}

// NoteNoCapacityRound records a provisioning round in which no offer had capacity: it forgets
// the failed offers (capacity comes and goes) and returns how many such rounds there were.
func NoteNoCapacityRound(ctx context.Context, q Querier, id string) (int, error) {
	var rounds int
	err := q.QueryRow(ctx, `UPDATE pods SET failed_offers = '{}', no_capacity_rounds = no_capacity_rounds + 1
		WHERE id = $1 RETURNING no_capacity_rounds`, id).Scan(&rounds)
	return rounds, err
}

// ForgetInstance clears a pod's instance (one that died while booting) so the next run launches
// anew.
func ForgetInstance(ctx context.Context, q Querier, id string) error {
	_, err := q.Exec(ctx, `UPDATE pods SET provider = NULL, instance_id = NULL, offer_id = NULL WHERE id = $1`, id)
	return err
}

// AddFailedOffer remembers an offer that refused this pod, so retries try the next one.
func AddFailedOffer(ctx context.Context, q Querier, id, offerKey string) error {
	_, err := q.Exec(ctx, `UPDATE pods SET failed_offers = array_append(failed_offers, $2) WHERE id = $1 AND NOT $2 = ANY(failed_offers)`, id, offerKey)
	return err
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
