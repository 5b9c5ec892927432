package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/gpu"
	"gpubroker/lifecycle"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// PodHealthArgs is tasks.PodHealthArgs: the workers' name for it.
type PodHealthArgs = tasks.PodHealthArgs

// deadChecks is how many checks in a row must find an instance dead before its pod is failed:
// one answer could be a provider's hiccup.
const deadChecks = 2

// podDiedError is what the failed pod says.
const podDiedError = "Your pod stopped working: its GPU instance failed at the provider. We terminated it; every paid minute it did not use is refunded, and we will email you the amount."

// PodHealthWorker asks each running pod's provider for its instance. Gone (not found),
// failed, terminating or terminated counts as dead (gpu.State: Lambda's unhealthy and
// preempted, RunPod's EXITED and ERROR are failed); a provider that cannot answer, or answers
// with a status its client cannot interpret (gpu.StateUnknown), counts as nothing. At the second
// dead check in a row (health_failures on the pod) the pod moves running → failed in one
// transaction with the instance's termination (terminate_instance), the refund of every unused
// minute by the early stop's rule (unused_hours_refund, reason pod_died, counted up to the first
// dead check) and the audit event pod.died; the refund job emails the amount.
type PodHealthWorker struct {
	river.WorkerDefaults[PodHealthArgs]
	d *Deps
}

// Work implements river.Worker.
func (w *PodHealthWorker) Work(ctx context.Context, job *river.Job[PodHealthArgs]) error {
	d := w.d
	if d.Broker == nil || job.Attempt > 1 {
		// A retry (after an error, or a rescue from a killed worker) checks nothing: two
		// checks moments apart must not count as two dead checks in a row. The next periodic
		// run checks again.
		return nil
	}
	running, err := postgres.RunningInstances(ctx, d.Pool)
	if err != nil {
		return err
	}
	for _, ri := range running {
		dead, why, ok := w.check(ctx, ri)
		if !ok {
			continue
		}
		n, since, err := postgres.NoteHealth(ctx, d.Pool, ri.PodID, dead, d.now())
		if err != nil {
			return err
		}
		if !dead || n < deadChecks {
			continue
		}
		if err := w.died(ctx, ri, why, since); err != nil {
			return err
		}
	}
	return nil
}

// check reports whether the instance is dead and why; ok is false when the provider could not
// say.
func (w *PodHealthWorker) check(ctx context.Context, ri postgres.RunningInstance) (dead bool, why string, ok bool) {
	p, found := w.d.Broker.Provider(ri.Provider)
	if !found {
		w.d.Logger.ErrorContext(ctx, "running pod on an unknown provider", "pod_id", ri.PodID, "provider", ri.Provider)
		return false, "", false
	}
	cctx, cancel := context.WithTimeout(ctx, w.d.StepTimeout)
	defer cancel()
	in, err := p.GetInstance(cctx, ri.InstanceID)
	switch {
	case errors.Is(err, gpu.ErrNotFound):
		return true, "the provider no longer knows the instance", true
	case err != nil:
		w.d.Logger.WarnContext(ctx, "health check could not reach the provider", "pod_id", ri.PodID, "provider", ri.Provider, "error", err)
		return false, "", false
	}
	switch in.State {
	case gpu.StateFailed, gpu.StateTerminated, gpu.StateTerminating:
		why = "the instance is " + string(in.State)
		if in.Error != "" {
			why += ": " + in.Error
		}
		return true, why, true
	case gpu.StateUnknown:
		// A status the client cannot interpret says nothing either way: as for a provider that
		// cannot answer, the check neither counts as dead nor clears the count.
		w.d.Logger.WarnContext(ctx, "health check got a provider status it cannot interpret", "pod_id", ri.PodID, "provider", ri.Provider, "detail", in.Error)
		return false, "", false
	}
	return false, "", true
}

// died fails the pod and queues what follows, in one transaction.
func (w *PodHealthWorker) died(ctx context.Context, ri postgres.RunningInstance, why string, since time.Time) error {
	d := w.d
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		pod, err := postgres.LockPod(ctx, tx, ri.PodID)
		if err != nil {
			return err
		}
		ok, err := lifecycle.MovePod(ctx, tx, pod, gpubroker.PodRunning, gpubroker.PodFailed, gpubroker.PodUpdate{Error: gpubroker.Ptr(podDiedError), TerminatedAt: gpubroker.Ptr(d.now())},
			map[string]any{"provider": ri.Provider, "instance": ri.InstanceID, "why": why})
		if err != nil || !ok {
			return err
		}
		// As moved: the end email says when it really ended (terminated_at), not when it was due.
		if pod, err = postgres.GetPod(ctx, tx, pod.ID); err != nil {
			return err
		}
		if err := terminateInstanceTx(ctx, tx, pod, true); err != nil {
			return err
		}
		o, err := postgres.GetOrder(ctx, tx, pod.OrderID)
		if err != nil {
			return err
		}
		if err := lifecycle.QueueEmailTx(ctx, tx, client(ctx), gpubroker.MailPodEnded, o.Email, "pod_terminated:"+pod.ID, mailData(d, o.Name, o.Email, pod, podDiedError)); err != nil {
			return err
		}
		if pod.OrderStatus != gpubroker.OrderCaptured {
			return nil
		}
		// The pod was the customer's until the first check that found it dead.
		stopped := since
		if stopped.IsZero() {
			stopped = d.now()
		}
		_, err = client(ctx).InsertTx(ctx, tx, UnusedHoursRefundArgs{PodID: pod.ID, Reason: gpubroker.RefundPodDied, StoppedAt: stopped}, nil)
		return err
	})
}
