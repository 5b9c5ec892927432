package jobs

import (
	"context"
	"gpubroker"
	"time"

	"github.com/riverqueue/river"

	"gpubroker/postgres"
	"gpubroker/tasks"
)

// Firewall opens a provider account's inbound firewall to what its instances need:
// lambda.Client.OpenFirewall, which returns the rules it added.
type Firewall interface {
	OpenFirewall(ctx context.Context) (added []string, err error)
}

// FirewallInterval is how often the Lambda account's firewall is checked.
const FirewallInterval = 10 * time.Minute

// LambdaFirewallArgs is tasks.LambdaFirewallArgs: the workers' name for it.
type LambdaFirewallArgs = tasks.LambdaFirewallArgs

// LambdaFirewallWorker runs LambdaFirewallArgs. Nothing waits for it: start-up, readiness and
// launches go on whatever it finds; a Lambda pod whose ports stay closed never becomes usable
// and is launched elsewhere at its boot deadline, while ops are alerted.
type LambdaFirewallWorker struct {
	river.WorkerDefaults[LambdaFirewallArgs]
	d *Deps
}

// Work implements river.Worker.
func (w *LambdaFirewallWorker) Work(ctx context.Context, _ *river.Job[LambdaFirewallArgs]) error {
	d := w.d
	if d.Firewall == nil {
		return nil
	}
	added, err := d.Firewall.OpenFirewall(ctx)
	if err != nil {
		// Counted as gpubroker_audit_events_total{action="lambda.firewall_failed"}, which
		// ops/alerts.yml pages on when it keeps happening.
		d.Logger.ErrorContext(ctx, "could not open Lambda's firewall to SSH, 80 and 443; Lambda pods cannot be reached until it is", "error", err)
		return postgres.Audit(ctx, d.Pool, postgres.AuditEvent{Action: gpubroker.ActionLambdaFirewallFailed, Detail: map[string]any{"error": err.Error()}})
	}
	if len(added) == 0 {
		return nil
	}
	d.Logger.InfoContext(ctx, "opened Lambda's firewall", "added", added)
	return postgres.Audit(ctx, d.Pool, postgres.AuditEvent{Action: gpubroker.ActionLambdaFirewallOpened, Detail: map[string]any{"added": added}})
}

// FirewallPeriodicJob runs lambda_firewall every FirewallInterval and when the worker starts.
func FirewallPeriodicJob() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(FirewallInterval),
		func() (river.JobArgs, *river.InsertOpts) { return LambdaFirewallArgs{}, nil },
		&river.PeriodicJobOpts{ID: "lambda_firewall", RunOnStart: true})
}
