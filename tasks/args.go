// Package tasks holds the arguments of every River job: what the api, the business layer and
// the workers enqueue, without importing the workers (package jobs) that run them. Each kind's
// queue, uniqueness and attempts are part of its arguments (InsertOpts).
package tasks

import (
	"gpubroker"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Queues. Each stage of a journey has its own, for isolation (a provider outage filling the
// pods queue never delays captures or email) and for latency: River sends at most one insert
// notification per queue per FetchCooldown, so a follow-up job put on the same queue within
// that window would wait for the next poll.
const (
	// QueueEmail: a slow mail provider never delays payments or provisioning.
	QueueEmail    = "email"
	QueuePayments = "payments" // capture, refund
	QueuePods     = "pods"     // provision, terminate
)

// unique makes a kind's job unique by its arguments while it is pending, scheduled, available,
// running or retryable: a double click or a redelivered event enqueues it once. Unlike River's
// default it leaves out completed, so a step that finished (a capture handed back after a
// Stripe outage) can be enqueued again; the workers' state guards make a rerun harmless.
func unique() river.UniqueOpts {
	return river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
		rivertype.JobStateRetryable, rivertype.JobStateScheduled,
	}}
}

// UniquePerPeriod is unique() within each period (at least River's one second): a periodic
// pass is inserted once a period, and one left running by a killed worker (until River rescues
// it, RESCUE_STUCK_JOBS_AFTER later) or waiting for its retry does not keep the next periods'
// passes out, as unique() would.
func UniquePerPeriod(period time.Duration) river.UniqueOpts {
	u := unique()
	u.ByPeriod = max(period, time.Second)
	return u
}

// CaptureArgs captures an order's payment when its pod is deployed.
type CaptureArgs struct {
	PodID string `json:"pod_id"`
}

// Kind implements river.JobArgs.
func (CaptureArgs) Kind() string { return "capture" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (CaptureArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique(), MaxAttempts: 10, Queue: QueuePayments}
}

// CreateAccountArgs creates (or finds) the account of an order's email and attaches the order.
// The API enqueues it for free trials; paid orders do the same work inside the Stripe event job.
type CreateAccountArgs struct {
	OrderID string `json:"order_id"`
}

// Kind implements river.JobArgs.
func (CreateAccountArgs) Kind() string { return "create_account" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (CreateAccountArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{UniqueOpts: unique()} }

// LambdaFirewallArgs keeps Lambda's inbound firewall open to SSH, 80 and 443 (periodic, on the
// worker's start too, when a Lambda key is configured).
type LambdaFirewallArgs struct{}

// Kind implements river.JobArgs.
func (LambdaFirewallArgs) Kind() string { return "lambda_firewall" }

// InsertOpts implements river.JobArgsWithInsertOpts. A failure is recorded by the run itself
// and the next period tries again, so River retries only a run that could not record it.
func (LambdaFirewallArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique(), MaxAttempts: 3}
}

// PodEndingArgs reminds the owner of a running pod that it ends at EndsAt, an hour before.
type PodEndingArgs struct {
	PodID  string    `json:"pod_id"`
	EndsAt time.Time `json:"ends_at"`
}

// Kind implements river.JobArgs.
func (PodEndingArgs) Kind() string { return "pod_ending" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (PodEndingArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique(), MaxAttempts: 10, Queue: QueuePods}
}

// PodHealthArgs checks every running pod's instance at its provider (periodic:
// POD_HEALTH_INTERVAL).
type PodHealthArgs struct{}

// Kind implements river.JobArgs.
func (PodHealthArgs) Kind() string { return "pod_health" }

// InsertOpts implements river.JobArgsWithInsertOpts: one check at a time, retried a couple of
// times (a worker killed mid-check must not leave a discarded job that pages ops).
func (PodHealthArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique(), MaxAttempts: 3, Queue: QueuePods}
}

// ProvisionArgs launches a captured pod at the cheapest provider and waits until it runs.
type ProvisionArgs struct {
	PodID string `json:"pod_id"`
}

// Kind implements river.JobArgs.
func (ProvisionArgs) Kind() string { return "provision" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ProvisionArgs) InsertOpts() river.InsertOpts {
	// Attempts every 30 s at most (RetryPolicy) for about the 20-minute deadline.
	return river.InsertOpts{UniqueOpts: unique(), MaxAttempts: 40, Queue: QueuePods}
}

// ReconcileArgs compares our records with Stripe's and the providers' (periodic:
// RECONCILE_INTERVAL).
type ReconcileArgs struct{}

// Kind implements river.JobArgs.
func (ReconcileArgs) Kind() string { return "reconcile" }

// InsertOpts implements river.JobArgsWithInsertOpts: one run at a time; its retry does nothing
// (jobs.ReconcileWorker), so a pass that failed is completed, never discarded.
func (ReconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique(), MaxAttempts: 3}
}

// RefreshOffersArgs refreshes provider offers and republishes offers.json.
type RefreshOffersArgs struct{}

// Kind implements river.JobArgs.
func (RefreshOffersArgs) Kind() string { return "refresh_offers" }

// InsertOpts makes it unique per 5-minute period, so several leaders or restarts run it once.
func (RefreshOffersArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: 5 * time.Minute}, MaxAttempts: 3}
}

// RefundArgs refunds a captured order whose pod could not be started.
type RefundArgs struct {
	PodID  string `json:"pod_id"`
	Reason string `json:"reason"`
}

// Kind implements river.JobArgs.
func (RefundArgs) Kind() string { return "refund" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (RefundArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique(), MaxAttempts: 25, Queue: QueuePayments}
}

// ReleaseHoldArgs cancels an unused hold, scheduled at gpubroker.HoldReleaseAt: a margin
// before the hold's own deadline (Stripe's capture_before).
type ReleaseHoldArgs struct {
	OrderID string `json:"order_id"`
}

// Kind implements river.JobArgs.
func (ReleaseHoldArgs) Kind() string { return "release_hold" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ReleaseHoldArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{UniqueOpts: unique()} }

// SendEmailArgs sends one outbox row.
type SendEmailArgs struct {
	EmailID int64 `json:"email_id"`
}

// Kind implements river.JobArgs.
func (SendEmailArgs) Kind() string { return "send_email" }

// InsertOpts makes the send unique per row and puts it on the email queue.
func (SendEmailArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique(), Queue: QueueEmail, MaxAttempts: 12}
}

// StripeEventArgs processes one stored webhook event.
type StripeEventArgs struct {
	EventID string `json:"event_id"`
}

// Kind implements river.JobArgs.
func (StripeEventArgs) Kind() string { return "stripe_event" }

// InsertOpts implements river.JobArgsWithInsertOpts. No UniqueOpts, unlike the other kinds:
// the job is inserted only in the transaction that stored its event, and stripe_events' primary
// key (the event id) already makes that happen once per event; a unique insert would hash the
// args and check River's unique index on the webhook's hot path for nothing.
func (StripeEventArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{} }

// TerminateArgs ends a running pod: scheduled at ends_at, or enqueued by the user. EndsAt is
// the end a scheduled job was scheduled for; when the pod has since been extended past it, the
// job does nothing (the extension scheduled another for the new end). Without EndsAt (a user's
// request) the pod is ended whatever its end.
type TerminateArgs struct {
	PodID  string     `json:"pod_id"`
	EndsAt *time.Time `json:"ends_at,omitempty"`
}

// Kind implements river.JobArgs.
func (TerminateArgs) Kind() string { return "terminate" }

// InsertOpts implements river.JobArgsWithInsertOpts. Not unique: the scheduled end and a
// user's request may both exist; the second finds the pod terminated and does nothing. A pod
// left running costs money every hour, so it keeps trying for days (capped backoff).
func (TerminateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 500, Queue: QueuePods}
}

// TerminateInstanceArgs makes sure a provider instance we no longer want is gone: one that
// failed while booting, or any instance of a pod we gave up on (refunded).
type TerminateInstanceArgs struct {
	PodID      string `json:"pod_id"`
	Provider   string `json:"provider,omitempty"`
	InstanceID string `json:"instance_id,omitempty"`
	// ByName also terminates every live instance launched under the pod's name, including one
	// whose launch answer was lost. Not for a pod that will launch again under that name.
	ByName bool `json:"by_name,omitempty"`
}

// Kind implements river.JobArgs.
func (TerminateInstanceArgs) Kind() string { return "terminate_instance" }

// InsertOpts implements river.JobArgsWithInsertOpts. An instance left running costs money
// every hour, so this job keeps trying (capped backoff) far longer than others.
func (TerminateInstanceArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique(), MaxAttempts: 500, Queue: QueuePods}
}

// UnusedHoursRefundArgs refunds the minutes a running pod will not use, by one rule whether it
// was stopped early by its owner (reason early_stop) or died under the customer (reason
// pod_died): every unused minute at its rate, rounded down to the cent (gpubroker.MinutesUsed,
// gpubroker.UnusedMinutesCents). StoppedAt is when the pod stopped being the customer's (the
// Stop click; for a death, the first check that found it dead), fixed when the job is enqueued
// (in the transaction that moved the pod), so every rerun computes the same refund.
type UnusedHoursRefundArgs struct {
	PodID     string                 `json:"pod_id"`
	Reason    gpubroker.RefundReason `json:"reason"`
	StoppedAt time.Time              `json:"stopped_at"`
}

// Kind implements river.JobArgs.
func (UnusedHoursRefundArgs) Kind() string { return "unused_hours_refund" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (UnusedHoursRefundArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique(), MaxAttempts: 25, Queue: QueuePayments}
}

// RetentionArgs deletes what is past its retention (postgres.Retention: expired sessions,
// ended rate-limit windows, spent tokens, old Stripe event payloads), periodic: every
// RetentionInterval, and when the worker starts.
type RetentionArgs struct{}

// Kind implements river.JobArgs.
func (RetentionArgs) Kind() string { return "retention" }

// InsertOpts implements river.JobArgsWithInsertOpts: one run at a time, retried a couple of
// times (every batch it finished stays done, so a rerun only continues).
func (RetentionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique(), MaxAttempts: 3}
}
