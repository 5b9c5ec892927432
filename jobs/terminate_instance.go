package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/gpu"
	"gpubroker/tasks"
)

// TerminateInstanceArgs is tasks.TerminateInstanceArgs: the workers' name for it.
type TerminateInstanceArgs = tasks.TerminateInstanceArgs

// terminateInstanceTx enqueues the clean-up of a pod's instances, in the caller's transaction.
func terminateInstanceTx(ctx context.Context, tx pgx.Tx, pod *gpubroker.Pod, byName bool) error {
	args := TerminateInstanceArgs{PodID: pod.ID, ByName: byName}
	if pod.InstanceID != nil {
		args.Provider, args.InstanceID = deref(pod.Provider), *pod.InstanceID
	}
	if args.InstanceID == "" && !byName {
		return nil
	}
	_, err := client(ctx).InsertTx(ctx, tx, args, nil)
	return err
}

// TerminateInstanceWorker runs TerminateInstanceArgs.
type TerminateInstanceWorker struct {
	river.WorkerDefaults[TerminateInstanceArgs]
	d *Deps
}

// Work implements river.Worker.
func (w *TerminateInstanceWorker) Work(ctx context.Context, job *river.Job[TerminateInstanceArgs]) error {
	d, a := w.d, job.Args
	if a.InstanceID != "" {
		if err := endInstance(ctx, d, a.Provider, a.InstanceID); err != nil {
			return err
		}
	}
	if !a.ByName {
		return nil
	}
	for range 10 { // more than one would be a bug elsewhere; stop rather than loop forever
		inst, err := d.Broker.FindInstance(ctx, InstanceName(a.PodID))
		if errors.Is(err, gpu.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		d.Logger.WarnContext(ctx, "terminating an instance of a pod we gave up on", "pod_id", a.PodID, "instance", inst.Provider+"/"+inst.ID)
		if err := endInstance(ctx, d, inst.Provider, inst.ID); err != nil {
			return err
		}
	}
	return fmt.Errorf("pod %s: instances keep appearing under its name", a.PodID)
}

// endInstance terminates an instance at its provider; one already gone counts as ended.
func endInstance(ctx context.Context, d *Deps, provider, id string) error {
	p, ok := d.Broker.Provider(provider)
	if !ok {
		return fmt.Errorf("instance %s/%s: provider %q is not configured", provider, id, provider)
	}
	if err := p.Terminate(ctx, id); err != nil && !errors.Is(err, gpu.ErrNotFound) {
		return fmt.Errorf("error terminating instance %s/%s: %w", provider, id, err)
	}
	return nil
}
