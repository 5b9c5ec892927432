package postgres

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
)

const podSelect = `SELECT p.id, p.order_id, p.account_id, p.status, o.plan, p.gpu, p.region, p.hours, p.template,
	o.hourly_cents, o.amount_cents, o.currency, o.status, o.hold_expires_at, p.provider, p.instance_id, p.offer_id, p.failed_offers,
	p.connection, COALESCE(p.ide_secret, ''), p.launch_keys, p.ssh_key_fingerprints, p.error, p.created_at, p.deploy_requested_at, p.captured_at, p.launched_at, p.started_at, p.ends_at, p.terminated_at,
	COALESCE((SELECT sum(r.amount_cents) FROM refunds r JOIN payments y ON y.id = r.payment_id WHERE y.order_id = p.order_id AND r.stripe_refund_id IS NOT NULL), 0),
	p.hours + COALESCE((SELECT sum(x.hours) FROM extensions x WHERE x.pod_id = p.id AND x.status = 'paid'
		AND NOT EXISTS (SELECT 1 FROM payments y JOIN refunds r ON r.payment_id = y.id WHERE y.payment_intent_id = x.payment_intent_id AND r.reason = 'late_extension')), 0),
	COALESCE((SELECT sum(y.amount_cents) FROM payments y WHERE y.order_id = p.order_id), 0),
	COALESCE(p.boot_secret, ''), p.sent_to, p.sent_at,
	COALESCE((SELECT jsonb_agg(jsonb_build_object('at', b.at, 'step', b.step, 'ok', b.ok, 'detail', b.detail) ORDER BY b.id)
		FROM boot_steps b WHERE b.pod_id = p.id), '[]')
	FROM pods p JOIN orders o ON o.id = p.order_id`

func scanPod(row pgx.Row) (*gpubroker.Pod, error) {
	var p gpubroker.Pod
	var conn []byte
	err := row.Scan(&p.ID, &p.OrderID, &p.AccountID, &p.Status, &p.Plan, &p.GPU, &p.Region, &p.Hours, &p.Template,
		&p.HourlyCents, &p.AmountCents, &p.Currency, &p.OrderStatus, &p.HoldExpiresAt, &p.Provider, &p.InstanceID, &p.OfferID,
		&p.FailedOffers, &conn, &p.IDESecret, &p.LaunchKeys, &p.SSHKeyFingerprints, &p.Error, &p.CreatedAt, &p.DeployRequestedAt, &p.CapturedAt, &p.LaunchedAt, &p.StartedAt, &p.EndsAt, &p.TerminatedAt,
		&p.RefundedCents, &p.HoursTotal, &p.PaidCents, &p.BootSecret, &p.SentTo, &p.SentAt, &p.BootSteps)
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
func GetPod(ctx context.Context, q Querier, id string) (*gpubroker.Pod, error) {
	p, err := scanPod(q.QueryRow(ctx, podSelect+` WHERE p.id = $1`, uuidOrEmpty(id)))
	return p, notFound(err, "pod")
}

// GetAccountPod returns a pod owned by an account; any other pod is ENOTFOUND, so a caller
// cannot learn that another account's pod exists.
func GetAccountPod(ctx context.Context, q Querier, accountID, id string) (*gpubroker.Pod, error) {
	if uuidOrEmpty(id) == "" {
		return nil, gpubroker.Errorf(gpubroker.ENOTFOUND, "not_found", "pod not found")
	}
	p, err := scanPod(q.QueryRow(ctx, podSelect+` WHERE p.id = $1 AND p.account_id = $2`, id, accountID))
	return p, notFound(err, "pod")
}

// LockPod locks a pod row (and returns it) for the rest of the transaction, serializing
// concurrent deploy and terminate requests.
func LockPod(ctx context.Context, tx pgx.Tx, id string) (*gpubroker.Pod, error) {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM pods WHERE id = $1 FOR UPDATE`, uuidOrEmpty(id)); err != nil {
		return nil, err
	}
	return GetPod(ctx, tx, id)
}

// GetOrderPod returns the pod of an order.
func GetOrderPod(ctx context.Context, q Querier, orderID string) (*gpubroker.Pod, error) {
	p, err := scanPod(q.QueryRow(ctx, podSelect+` WHERE p.order_id = $1`, orderID))
	return p, notFound(err, "pod")
}

// ListAccountPods returns an account's pods, newest first.
func ListAccountPods(ctx context.Context, q Querier, accountID string) ([]*gpubroker.Pod, error) {
	rows, err := q.Query(ctx, podSelect+` WHERE p.account_id = $1 ORDER BY p.created_at DESC`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	pods := []*gpubroker.Pod{}
	for rows.Next() {
		p, err := scanPod(rows)
		if err != nil {
			return nil, err
		}
		pods = append(pods, p)
	}
	return pods, rows.Err()
}

// MovePod moves a pod from one status to another and applies u in the same statement. It
// reports false, changing nothing, when the pod is not in status from. from == to applies u only
// while the pod is in that status; any other move must be in the pod transition table.
func MovePod(ctx context.Context, tx pgx.Tx, id string, from, to gpubroker.PodStatus, u gpubroker.PodUpdate) (bool, error) {
	if from != to && !from.CanMoveTo(to) {
		return false, fmt.Errorf("pod transition %s -> %s is not allowed", from, to)
	}
	sql, args, err := podSet(u, id, to, from)
	if err != nil {
		return false, err
	}
	tag, err := tx.Exec(ctx, `UPDATE pods SET status = $2`+sql+` WHERE id = $1 AND status = $3`, args...)
	return tag.RowsAffected() == 1, err
}

// UpdatePod applies u to a pod whatever its status (e.g. the instance just launched).
func UpdatePod(ctx context.Context, tx pgx.Tx, id string, u gpubroker.PodUpdate) error {
	sql, args, err := podSet(u, id)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE pods SET id = id`+sql+` WHERE id = $1`, args...)
	return err
}

// podSet turns u into ", col = $n" assignments after the given leading arguments.
func podSet(u gpubroker.PodUpdate, lead ...any) (string, []any, error) {
	args := lead
	var sql strings.Builder
	set := func(col string, v any) {
		args = append(args, v)
		fmt.Fprintf(&sql, ", %s = $%d", col, len(args))
	}
	if u.Provider != nil {
		set("provider", *u.Provider)
	}
	if u.InstanceID != nil {
		set("instance_id", *u.InstanceID)
	}
	if u.OfferID != nil {
		set("offer_id", *u.OfferID)
	}
	if u.CostCentsPerHour != nil {
		set("cost_cents_per_hour", *u.CostCentsPerHour)
	}
	if u.Connection != nil {
		b, err := json.Marshal(u.Connection)
		if err != nil {
			return "", nil, err
		}
		set("connection", b)
	}
	if u.Error != nil {
		set("error", nullIfEmpty(*u.Error))
	}
	if u.IDESecret != nil {
		set("ide_secret", *u.IDESecret)
	}
	for _, c := range []struct {
		col string
		v   *time.Time
	}{
		{"deploy_requested_at", u.DeployRequestedAt}, {"captured_at", u.CapturedAt}, {"launched_at", u.LaunchedAt},
		{"started_at", u.StartedAt}, {"ends_at", u.EndsAt}, {"terminated_at", u.TerminatedAt},
	} {
		if c.v != nil {
			set(c.col, *c.v)
		}
	}
	return sql.String(), args, nil
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// FixLaunch fixes what a pod's instance is launched with, at its first launch attempt: the
// IDE secret, the boot-report secret and the account's keys then. Later attempts (and a rescued job) get the values
// stored by the first, so every launch of the pod asks for the same workspace.
func FixLaunch(ctx context.Context, q Querier, podID, secret, bootSecret string, keys []gpubroker.SSHKey) (*gpubroker.Pod, error) {
	lines, fps := make([]string, 0, len(keys)), make([]string, 0, len(keys))
	for _, k := range keys {
		lines, fps = append(lines, k.PublicKey), append(fps, k.Fingerprint)
	}
	if _, err := q.Exec(ctx, `UPDATE pods SET ide_secret = COALESCE(ide_secret, $2), launch_keys = COALESCE(launch_keys, $3),
		ssh_key_fingerprints = CASE WHEN launch_keys IS NULL THEN $4 ELSE ssh_key_fingerprints END,
		boot_secret = COALESCE(boot_secret, $5) WHERE id = $1`,
		podID, secret, lines, fps, bootSecret); err != nil {
		return nil, err
	}
	return GetPod(ctx, q, podID)
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

// RecordBootStep stores a step the pod's bootstrap reported, when secret is the pod's boot
// secret (compared in constant time). A wrong secret, an unknown pod or one never launched is
// EUNAUTHORIZED alike, so the answer tells nobody which pods exist; a pod that has reported
// MaxBootSteps already is ERATELIMIT.
func RecordBootStep(ctx context.Context, tx pgx.Tx, podID, secret string, st gpubroker.BootStep) error {
	var want string
	var n int
	err := pgx.ErrNoRows
	if uuidOrEmpty(podID) != "" {
		err = tx.QueryRow(ctx, `SELECT COALESCE(p.boot_secret, ''), (SELECT count(*) FROM boot_steps b WHERE b.pod_id = p.id)
			FROM pods p WHERE p.id = $1 FOR UPDATE`, podID).Scan(&want, &n)
	}
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && (want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1)) {
		return gpubroker.Errorf(gpubroker.EUNAUTHORIZED, "unauthorized", "This is not the pod's boot secret.")
	}
	if err != nil {
		return err
	}
	if n >= gpubroker.MaxBootSteps {
		return gpubroker.Errorf(gpubroker.ERATELIMIT, "rate_limited", "This pod has reported %d steps already.", n)
	}
	_, err = tx.Exec(ctx, `INSERT INTO boot_steps (pod_id, at, step, ok, detail) VALUES ($1, $2, $3, $4, $5)`, podID, st.At, st.Step, st.OK, st.Detail)
	return err
}

// MarkSentTo records, before a launch request leaves for provider, that the pod was sent there:
// its instance may exist there from then on, whatever becomes of the answer.
func MarkSentTo(ctx context.Context, q Querier, podID, provider string, now time.Time) error {
	_, err := q.Exec(ctx, `UPDATE pods SET sent_to = CASE WHEN $2 = ANY(sent_to) THEN sent_to ELSE sent_to || $2 END, sent_at = $3 WHERE id = $1`,
		podID, provider, now)
	return err
}
