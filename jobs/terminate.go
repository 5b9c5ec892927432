package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// TerminateArgs is tasks.TerminateArgs: the workers' name for it.
type TerminateArgs = tasks.TerminateArgs

// TerminateWorker terminates the instance (idempotently at the provider) and records it.
type TerminateWorker struct {
	river.WorkerDefaults[TerminateArgs]
	d *Deps
}

// Work implements river.Worker.
func (w *TerminateWorker) Work(ctx context.Context, job *river.Job[TerminateArgs]) error {
	d := w.d
	pod, err := postgres.GetPod(ctx, d.Pool, job.Args.PodID)
	if err != nil {
		return err
	}
	if pod.Status == gpubroker.PodRunning {
		extended := false
		err := postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
			pod, err := postgres.LockPod(ctx, tx, pod.ID)
			if err != nil {
				return err
			}
			// Woken for an end the pod has been extended past (by whole hours; the second of
			// slack absorbs Postgres rounding ends_at to microseconds): the extension's
			// transaction scheduled the terminate for the new end, and the pod runs on.
			if a := job.Args.EndsAt; a != nil && pod.Status == gpubroker.PodRunning && pod.EndsAt != nil && pod.EndsAt.After(a.Add(time.Second)) {
				extended = true
				return nil
			}
			_, err = lifecycle.MovePod(ctx, tx, pod, gpubroker.PodRunning, gpubroker.PodTerminating, gpubroker.PodUpdate{}, map[string]any{"by": "end_of_paid_time"})
			return err
		})
		if err != nil || extended {
			return err
		}
	} else if pod.Status != gpubroker.PodTerminating {
		return nil
	}
	if pod.InstanceID != nil {
		if err := endInstance(ctx, d, deref(pod.Provider), *pod.InstanceID); err != nil {
			return err
		}
	}
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		ok, err := lifecycle.MovePod(ctx, tx, pod, gpubroker.PodTerminating, gpubroker.PodTerminated, gpubroker.PodUpdate{TerminatedAt: gpubroker.Ptr(d.now())}, nil)
		if err != nil || !ok {
			return err
		}
		// As moved: the end email says when it really ended (terminated_at), not when it was due.
		pod, err := postgres.GetPod(ctx, tx, pod.ID)
		if err != nil {
			return err
		}
		// A launch whose answer was lost may have left a second instance under the pod's name.
		if _, err := client(ctx).InsertTx(ctx, tx, TerminateInstanceArgs{PodID: pod.ID, ByName: true}, nil); err != nil {
			return err
		}
		o, err := postgres.GetOrder(ctx, tx, pod.OrderID)
		if err != nil {
			return err
		}
		// An early stop's refund was planned with the move to terminating: say the amount.
		refunds, err := postgres.PodRefunds(ctx, tx, pod.ID, gpubroker.RefundEarlyStop)
		if err != nil {
			return err
		}
		return lifecycle.QueueEmailTx(ctx, tx, client(ctx), gpubroker.MailPodEnded, o.Email, "pod_terminated:"+pod.ID, mailData(d, o.Name, o.Email, pod, earlyStopNote(refunds, pod)))
	})
}
