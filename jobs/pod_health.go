package jobs

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
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

// PodHealthWorker watches every running pod's instance. A pass reads the running pods, then
// asks each provider that has any for its instances once (ListInstances, all providers at once),
// whatever the fleet's size: asking per pod (about 200 ms a call, and Lambda allows about one
// request a second) never finished a pass over a few hundred pods within the minute. Each pod
// is matched to the listed instance by the instance id stored at launch, which is listed under
// the pod's name (InstanceName).
//
// Missing from a successful list (gone; terminated and terminating instances are not listed) or
// listed failed (gpu.State: Lambda's unhealthy and preempted, RunPod's EXITED and ERROR) counts
// as dead; an instance listed under the pod's name with another id is a duplicate launch (the
// reconciler ends it), not the pod's. A provider whose list call fails counts as nothing for its
// pods, and so does a status its client cannot interpret (gpu.StateUnknown). At the second dead
// check in a row (health_failures on the pod) the pod moves running → failed in one transaction
// with the instance's termination (terminate_instance), the refund of every unused minute by the
// early stop's rule (unused_hours_refund, reason pod_died, counted up to the first dead check)
// and the audit event pod.died; the refund job emails the amount.
//
// Every pass is recorded (postgres.RecordHealthPass) with its duration and outcome, which the
// ops collector exports.
type PodHealthWorker struct {
	river.WorkerDefaults[PodHealthArgs]
	d *Deps
}

// listing is what one provider answered to the pass's list call.
type listing struct {
	byID map[string]gpu.Instance
	err  error
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
	// Wall time, not d.now: the pass time is a measure, and tests move d.now.
	began := time.Now()
	pass := postgres.HealthPass{StartedAt: began}
	// The running pods first, the lists after: a pod that starts running meanwhile is checked
	// next pass, never found missing from a list made before its instance existed.
	running, err := postgres.RunningInstances(ctx, d.Pool)
	if err != nil {
		return err
	}
	pass.Pods = len(running)
	lists := w.list(ctx, running)
	pass.ListCalls = len(lists)
	for _, name := range slices.Sorted(maps.Keys(lists)) {
		if lists[name].err != nil {
			pass.FailedProviders = append(pass.FailedProviders, name)
		}
	}

	var healthy, dead []string
	why := map[string]string{}
	byPod := map[string]postgres.RunningInstance{}
	for _, ri := range running {
		l, asked := lists[ri.Provider]
		if !asked {
			pass.Unknown++ // on a provider we do not have (logged by list)
			continue
		}
		isDead, reason, ok := w.check(ctx, ri, l)
		switch {
		case !ok:
			pass.Unknown++
		case isDead:
			dead = append(dead, ri.PodID)
			why[ri.PodID], byPod[ri.PodID] = reason, ri
		default:
			healthy = append(healthy, ri.PodID)
		}
	}
	pass.Healthy, pass.Dead = len(healthy), len(dead)
	if err := postgres.ClearHealthFailures(ctx, d.Pool, healthy); err != nil {
		return err
	}
	counts, err := postgres.NoteDeadChecks(ctx, d.Pool, dead, d.now())
	if err != nil {
		return err
	}
	var errs []error
	for _, podID := range dead {
		c, ok := counts[podID]
		if !ok || c.N < deadChecks {
			continue
		}
		// One pod's failure to fail does not stop the others': it is failed next pass (its
		// count stays at two or more).
		if err := w.died(ctx, byPod[podID], why[podID], c.Since); err != nil {
			errs = append(errs, err)
		}
	}

	pass.Seconds = time.Since(began).Seconds()
	if err := postgres.RecordHealthPass(ctx, d.Pool, pass); err != nil {
		// The checks are noted; only the measure is lost. Failing the job for it would retry a
		// pass that checks nothing.
		d.Logger.ErrorContext(ctx, "pod health: recording the pass failed", "error", err)
	}
	level := slog.LevelDebug
	if pass.Dead > 0 || pass.Unknown > 0 {
		level = slog.LevelInfo
	}
	d.Logger.Log(ctx, level, "pod health pass", "seconds", pass.Seconds, "pods", pass.Pods, "healthy", pass.Healthy,
		"dead", pass.Dead, "unknown", pass.Unknown, "list_calls", pass.ListCalls, "failed_providers", pass.FailedProviders)
	return errors.Join(errs...)
}

// list asks every provider that has running pods for its instances, one call each, all at
// once (each provider's client paces its own requests: Lambda's about one a second). The answers are keyed by provider name; providers without running pods are
// not asked, and running pods on a provider the broker does not have are logged.
func (w *PodHealthWorker) list(ctx context.Context, running []postgres.RunningInstance) map[string]*listing {
	d := w.d
	out := map[string]*listing{}
	orphaned := map[string]int{}
	for _, ri := range running {
		if _, asked := out[ri.Provider]; asked {
			continue
		}
		if _, found := d.Broker.Provider(ri.Provider); !found {
			orphaned[ri.Provider]++
			continue
		}
		out[ri.Provider] = &listing{}
	}
	for name, n := range orphaned {
		d.Logger.ErrorContext(ctx, "running pods on an unknown provider", "provider", name, "pods", n)
	}
	// A provider that hangs must leave the pass time to note what the others answered: its
	// call gets a step's timeout, but at most half of what is left of the job's.
	timeout := d.StepTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(deadline)/2)
	}
	var wg sync.WaitGroup
	for name, l := range out {
		p, _ := d.Broker.Provider(name)
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			list, err := p.ListInstances(cctx)
			if err != nil {
				l.err = err
				d.Logger.WarnContext(ctx, "health check could not list the provider's instances; its pods count as unknown", "provider", name, "error", err)
				return
			}
			l.byID = make(map[string]gpu.Instance, len(list))
			for _, in := range list {
				l.byID[in.ID] = in
			}
		})
	}
	wg.Wait()
	return out
}

// check reports whether the pod's instance is dead and why, by its provider's list; ok is false
// when the provider could not say.
func (w *PodHealthWorker) check(ctx context.Context, ri postgres.RunningInstance, l *listing) (dead bool, why string, ok bool) {
	if l.err != nil {
		// The provider's API failed (an outage, a rate limit, a timeout): that is not the pod's
		// death. Its pods are neither struck nor cleared until it lists again; a whole provider
		// API down must never fail (and refund) every pod on it.
		return false, "", false
	}
	in, listed := l.byID[ri.InstanceID]
	if !listed {
		// Gone, or terminated (lists hold live instances only). Another instance under the
		// pod's name is a duplicate launch, not the pod's.
		return true, "the provider no longer lists the instance", true
	}
	if in.Name != InstanceName(ri.PodID) {
		// The id is the provider's and was stored at launch, so this is the pod's instance
		// whatever it is called now: a name that changed (or a list that stopped carrying
		// names) must not fail every pod. Worth a look, not a verdict.
		w.d.Logger.WarnContext(ctx, "health check found the pod's instance under another name", "pod_id", ri.PodID, "provider", ri.Provider, "instance", ri.InstanceID, "name", in.Name)
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
