package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"gpubroker"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// RetentionArgs is tasks.RetentionArgs: the workers' name for it.
type RetentionArgs = tasks.RetentionArgs

// RetentionWorker deletes what is past its retention (postgres.Retention), category by
// category, each statement on at most postgres.RetentionBatch rows and committed on its own.
// A category is done when a batch comes back short; a run takes every unfinished category in
// turn, a batch each, until all are done, RetentionMaxBatches rounds have run or
// RetentionRunBudget has passed, so one huge backlog neither starves the others nor outlasts
// the job's timeout. What is left waits for the next run.
type RetentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	d *Deps
	// maxBatches and budget replace the tunables (tests).
	maxBatches int
	budget     time.Duration
}

// Work implements river.Worker.
func (w *RetentionWorker) Work(ctx context.Context, job *river.Job[RetentionArgs]) error {
	maxBatches, budget := w.maxBatches, w.budget
	if maxBatches == 0 {
		maxBatches = tasks.RetentionMaxBatches
	}
	if budget == 0 {
		budget = tasks.RetentionRunBudget
	}
	start, now := time.Now(), w.d.now()
	removed := map[string]int64{}
	pending := postgres.Retention
	for round := 0; len(pending) > 0 && round < maxBatches && (round == 0 || time.Since(start) < budget); round++ {
		var more []postgres.RetentionCategory
		for _, c := range pending {
			n, err := c.PruneBatch(ctx, w.d.Pool, now, postgres.RetentionBatch)
			removed[c.Name] += n
			if err != nil {
				w.d.Logger.ErrorContext(ctx, "retention failed", "category", c.Name, "removed", removed, "error", err)
				return err
			}
			if n >= postgres.RetentionBatch {
				more = append(more, c)
			}
		}
		pending = more
	}
	var left []string
	for _, c := range pending {
		left = append(left, c.Name)
	}
	w.d.Logger.InfoContext(ctx, "retention done", "removed", removed, "left_for_next_run", left, "took", time.Since(start))
	return nil
}

// RetentionPeriodicJob runs retention every RetentionInterval, and when the worker starts (a
// worker restarted more often than hourly would otherwise never run it).
func RetentionPeriodicJob() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(tasks.RetentionInterval),
		func() (river.JobArgs, *river.InsertOpts) { return RetentionArgs{}, nil },
		&river.PeriodicJobOpts{ID: "retention", RunOnStart: true})
}

// Hooks are the River client's global hooks (worker.NewClient): outcomeHook.
func Hooks(deps *Deps) []rivertype.Hook {
	d := deps.withDefaults()
	return []rivertype.Hook{&outcomeHook{d: d}}
}

// outcomeHook writes the outcome of every job about an order or a pod (its arguments carry
// order_id or pod_id, as the order's story finds its jobs) into the audit trail:
// job.completed, or job.failed when it is discarded after its last attempt or cancelled, with
// its kind, id, attempt and last error. River deletes finished jobs after its retention
// (tasks.CompletedJobRetention…); the audit trail is kept, so the story keeps each job's
// outcome. An attempt that will be retried, or a snooze, is no outcome. The entry is written
// when the work returns, just before River records the job's state: a process killed between
// the two runs the job again and its outcome is written again. A job that panics leaves none
// (River recovers the panic outside the hooks). Writing it never changes the job's result.
type outcomeHook struct {
	river.HookDefaults
	d *Deps
}

// WorkEnd implements rivertype.HookWorkEnd.
func (h *outcomeHook) WorkEnd(ctx context.Context, job *rivertype.JobRow, err error) error {
	var ids struct {
		OrderID string `json:"order_id"`
		PodID   string `json:"pod_id"`
	}
	if h.d.Pool == nil || json.Unmarshal(job.EncodedArgs, &ids) != nil || (ids.OrderID == "" && ids.PodID == "") {
		return err
	}
	var snooze *rivertype.JobSnoozeError
	var cancel *rivertype.JobCancelError
	detail := map[string]any{"job_id": job.ID, "kind": job.Kind, "attempt": job.Attempt, "max_attempts": job.MaxAttempts}
	action := gpubroker.ActionJobFailed
	switch {
	case err == nil:
		action, detail["state"] = gpubroker.ActionJobCompleted, "completed"
	case errors.As(err, &snooze):
		return err
	case errors.As(err, &cancel):
		detail["state"], detail["error"] = "cancelled", err.Error()
	case job.Attempt >= job.MaxAttempts:
		detail["state"], detail["error"] = "discarded", err.Error()
	default:
		return err // retried: not an outcome yet
	}
	// The job's own context may have ended (a timeout is a failure too).
	actx, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer stop()
	if aerr := postgres.Audit(actx, h.d.Pool, postgres.AuditEvent{OrderID: ids.OrderID, PodID: ids.PodID, Action: action, Detail: detail}); aerr != nil {
		h.d.Logger.ErrorContext(ctx, "could not audit a job's outcome", "job_id", job.ID, "kind", job.Kind, "error", aerr)
	}
	return err
}
