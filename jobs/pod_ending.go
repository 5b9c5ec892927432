package jobs

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// The owner of a pod rented for more than an hour is reminded one (rented) hour before its end.

// PodEndingArgs is tasks.PodEndingArgs: the workers' name for it.
type PodEndingArgs = tasks.PodEndingArgs

// reminderTx schedules the reminder for a pod that now ends at ends after running for hours
// hours in all (none for a pod of an hour or less), in the caller's transaction.
func reminderTx(ctx context.Context, tx pgx.Tx, podID string, hours int, ends time.Time, clock gpubroker.RentalClock) error {
	if hours <= 1 {
		return nil
	}
	_, err := client(ctx).InsertTx(ctx, tx, PodEndingArgs{PodID: podID, EndsAt: ends}, &river.InsertOpts{ScheduledAt: ends.Add(-clock.Hours(1))})
	return err
}

// PodEndingWorker emails the reminder once per end: the outbox's dedupe key
// (pod_ending:<pod>:<end>) makes a rerun send nothing more, and a pod extended past EndsAt
// (another reminder is scheduled for its new end) or no longer running is not reminded.
type PodEndingWorker struct {
	river.WorkerDefaults[PodEndingArgs]
	d *Deps
}

// Work implements river.Worker.
func (w *PodEndingWorker) Work(ctx context.Context, job *river.Job[PodEndingArgs]) error {
	d, a := w.d, job.Args
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		pod, err := postgres.GetPod(ctx, tx, a.PodID)
		if err != nil {
			return err
		}
		if pod.Status != gpubroker.PodRunning || pod.EndsAt == nil || pod.EndsAt.Sub(a.EndsAt).Abs() > time.Second {
			return nil
		}
		o, err := postgres.GetOrder(ctx, tx, pod.OrderID)
		if err != nil {
			return err
		}
		md := mailData(d, o.Name, o.Email, pod, "")
		md.Link = d.PublicURL + "/dashboard/#pod-" + pod.ID
		return lifecycle.QueueEmailTx(ctx, tx, client(ctx), gpubroker.MailPodEnding, o.Email, "pod_ending:"+pod.ID+":"+strconv.FormatInt(a.EndsAt.Unix(), 10), md)
	})
}
