package jobs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"gpubroker"
	"gpubroker/gpu"
	"gpubroker/gpu/ready"
	"gpubroker/lifecycle"
	"gpubroker/postgres"
	"gpubroker/tasks"
	"gpubroker/workspaces"
)

// ProvisionArgs is tasks.ProvisionArgs: the workers' name for it.
type ProvisionArgs = tasks.ProvisionArgs

// InstanceName is the name a pod's instance is launched under at every provider; it is how a
// retried job finds what an earlier run launched instead of launching twice.
func InstanceName(podID string) string { return "gpubroker-" + podID }

// ProvisionWorker drives a pod from provisioning to running. Each run does one step and
// snoozes: launch (after looking for an instance already launched under the pod's name), then
// poll until running. Snoozing keeps no worker slot busy while a GPU boots.
type ProvisionWorker struct {
	river.WorkerDefaults[ProvisionArgs]
	d *Deps
}

// Timeout bounds one step (a launch call or a poll), well under RescueStuckJobsAfter, so a
// provider that never answers costs an attempt, not a stuck job.
func (w *ProvisionWorker) Timeout(*river.Job[ProvisionArgs]) time.Duration { return w.d.StepTimeout }

// Work implements river.Worker.
func (w *ProvisionWorker) Work(ctx context.Context, job *river.Job[ProvisionArgs]) error {
	d := w.d
	pod, err := postgres.GetPod(ctx, d.Pool, job.Args.PodID)
	if err != nil {
		return err
	}
	if pod.Status != gpubroker.PodProvisioning {
		// Running already, or terminal: a pod that was given up is failed at once (its refund
		// may still be pending), so a late or rescued run stops here and launches nothing.
		return nil
	}
	// The invariant of the product: no pod is launched without a captured payment.
	if pod.OrderStatus != gpubroker.OrderCaptured && pod.OrderStatus != gpubroker.OrderFree {
		return river.JobCancel(fmt.Errorf("pod %s: order is %s, not captured; refusing to launch", pod.ID, pod.OrderStatus))
	}
	if pod.InstanceID == nil && w.pastDeadline(pod) {
		return w.giveUp(ctx, pod, "We could not start a GPU in time.")
	}
	if pod.InstanceID == nil {
		err = w.launch(ctx, pod)
	} else {
		err = w.poll(ctx, pod)
	}
	var snooze *rivertype.JobSnoozeError
	var cancel *rivertype.JobCancelError
	if err == nil || errors.As(err, &snooze) || errors.As(err, &cancel) {
		return err
	}
	// A provider or database error: River retries it, but never past the deadline or the last
	// attempt, so a captured payment always ends in a running pod or a refund.
	// One attempt of headroom: if giving up itself fails, the last attempt can still do it.
	if w.pastDeadline(pod) || job.Attempt >= job.MaxAttempts-1 {
		d.Logger.ErrorContext(ctx, "provisioning failed for good", "pod_id", pod.ID, "attempt", job.Attempt, "error", err)
		if gerr := w.giveUp(ctx, pod, "We could not start a GPU: our providers kept failing."); gerr != nil {
			return errors.Join(err, gerr)
		}
		return nil
	}
	return err
}

func (w *ProvisionWorker) launch(ctx context.Context, pod *gpubroker.Pod) error {
	d := w.d
	// Only the providers this pod was ever sent to can hold its instance: one that was never
	// asked, and is down, must not stop a launch elsewhere.
	inst, err, elsewhere := (*gpu.Instance)(nil), error(gpu.ErrNotFound), false
	if len(pod.SentTo) > 0 {
		inst, err = d.Broker.FindInstanceAt(ctx, InstanceName(pod.ID), pod.SentTo)
	}
	switch {
	case err == nil && inst.State == gpu.StateFailed:
		// A broken instance still holds the name (and may bill): end it, then launch anew.
		if err := endInstance(ctx, d, inst.Provider, inst.ID); err != nil {
			return err
		}
		return river.JobSnooze(d.PollInterval)
	case err == nil:
		d.Logger.InfoContext(ctx, "found the instance an earlier run launched", "pod_id", pod.ID, "instance", inst.Provider+"/"+inst.ID)
		return w.recordLaunch(ctx, pod, inst, nil)
	case errors.Is(err, gpu.ErrNotFound):
	case pod.SentAt != nil && d.now().Sub(*pod.SentAt) > d.LostLaunchWait:
		// A provider we sent a launch to still cannot say whether it holds the instance. Waiting
		// longer costs the customer their pod; launching elsewhere costs at most a duplicate,
		// which the reconciler ends once that provider answers (its pod runs another instance).
		d.Logger.WarnContext(ctx, "a provider the pod was sent to cannot answer; launching elsewhere", "pod_id", pod.ID, "sent_to", pod.SentTo, "error", err)
		elsewhere = true
	default:
		return fmt.Errorf("error looking for an instance already launched: %w", err)
	}
	req, err := w.launchRequest(ctx, pod)
	if err != nil {
		return err
	}
	exclude := map[string]bool{}
	for _, k := range pod.FailedOffers {
		exclude[k] = true
	}
	// Never above the hourly price the customer pays: every launch keeps a margin.
	q := gpu.OfferQuery{GPU: pod.GPU, Region: pod.Region, MaxCentsPerHour: pod.HourlyCents}
	if elsewhere { // not where the lost launch went: the providers it was sent to
		offers, err := d.Broker.Offers(ctx, q)
		if err != nil {
			return err
		}
		for _, o := range offers {
			if slices.Contains(pod.SentTo, o.Provider) || slices.Contains(pod.SentTo, "*") {
				exclude[gpu.OfferKey(o)] = true
			}
		}
	}
	// Each provider is recorded before the request leaves: an answer lost on the way back is
	// then looked for there, and only there (launch, above).
	sent := func(provider string) error { return postgres.MarkSentTo(ctx, d.Pool, pod.ID, provider, d.now()) }
	inst, offer, attempts, err := d.Broker.Launch(ctx, q, req, exclude, sent)
	for _, a := range attempts {
		if gpu.Failover(a.Err) {
			if err := postgres.AddFailedOffer(ctx, d.Pool, pod.ID, gpu.OfferKey(a.Offer)); err != nil {
				return err
			}
		}
		// Ops count these (gpubroker_audit_events_total{action=…}): a provider we cannot launch
		// at until someone fixes its configuration, or one that refuses our request as it is.
		var action gpubroker.AuditAction
		switch {
		case errors.Is(a.Err, gpu.ErrProviderConfig):
			action = gpubroker.ActionProviderConfigError
		case errors.Is(a.Err, gpu.ErrRefused):
			action = gpubroker.ActionProviderRefused
		}
		if action != "" {
			if err := postgres.Audit(ctx, d.Pool, postgres.AuditEvent{AccountID: deref(pod.AccountID), OrderID: pod.OrderID, PodID: pod.ID,
				Action: action, Detail: map[string]any{"provider": a.Offer.Provider, "offer": gpu.OfferKey(a.Offer), "error": a.Err.Error()}}); err != nil {
				return err
			}
		}
	}
	switch {
	case err == nil:
		d.Logger.InfoContext(ctx, "instance launched", "pod_id", pod.ID, "offer", gpu.OfferKey(*offer), "cents_per_hour", offer.CentsPerHour)
		return w.recordLaunch(ctx, pod, inst, offer)
	case errors.Is(err, gpu.ErrNoCapacity):
		// Capacity comes and goes: forget the failures and try every offer again after a backoff,
		// up to NoCapacityRetries rounds.
		rounds, qerr := postgres.NoteNoCapacityRound(ctx, d.Pool, pod.ID)
		if qerr != nil {
			return qerr
		}
		d.Logger.WarnContext(ctx, "no offer could be launched", "pod_id", pod.ID, "round", rounds, "error", err)
		if rounds >= d.NoCapacityRetries {
			return w.giveUp(ctx, pod, "No provider had capacity for this GPU in this region.")
		}
		return err
	case errors.Is(err, gpu.ErrRateLimited):
		return river.JobSnooze(max(gpu.RetryAfter(err), time.Second))
	default:
		return err
	}
}

// launchRequest is what the pod's instance is started with, the same at every provider and on
// every retry: the template's image and IDE, the account's SSH keys, the pod's IDE secret and
// boot-report secret (fixed at the first attempt), and the starter project to unpack at first
// boot.
func (w *ProvisionWorker) launchRequest(ctx context.Context, pod *gpubroker.Pod) (gpu.LaunchRequest, error) {
	d := w.d
	tpl, ok := d.Catalog.Template(pod.Template)
	if !ok {
		return gpu.LaunchRequest{}, river.JobCancel(fmt.Errorf("pod %s: unknown template %q", pod.ID, pod.Template))
	}
	var keys []gpubroker.SSHKey
	if pod.LaunchKeys == nil && pod.AccountID != nil {
		var err error
		if keys, err = postgres.LaunchSSHKeys(ctx, d.Pool, *pod.AccountID); err != nil {
			return gpu.LaunchRequest{}, err
		}
	}
	fixed, err := postgres.FixLaunch(ctx, d.Pool, pod.ID, rand.Text(), rand.Text(), keys)
	if err != nil {
		return gpu.LaunchRequest{}, err
	}
	ws, err := workspaces.For(tpl.ID, d.PublicURL)
	if err != nil {
		return gpu.LaunchRequest{}, river.JobCancel(fmt.Errorf("pod %s: %w", pod.ID, err))
	}
	return gpu.LaunchRequest{
		Name: InstanceName(pod.ID), Image: tpl.Image, IDE: tpl.IDE,
		SSHPublicKeys: fixed.LaunchKeys, IDESecret: fixed.IDESecret, Workspace: ws,
		// The bootstrap reports its steps here; shown to the customer, never trusted for billing.
		BootURL: d.PublicURL + "/api/pods/" + pod.ID + "/boot", BootSecret: fixed.BootSecret,
	}, nil
}

func (w *ProvisionWorker) recordLaunch(ctx context.Context, pod *gpubroker.Pod, inst *gpu.Instance, offer *gpu.Offer) error {
	d := w.d
	set := gpubroker.PodUpdate{Provider: &inst.Provider, InstanceID: &inst.ID, LaunchedAt: gpubroker.Ptr(d.now()), CostCentsPerHour: &inst.CentsPerHour}
	if offer != nil {
		set.OfferID = gpubroker.Ptr(gpu.OfferKey(*offer))
		set.CostCentsPerHour = &offer.CentsPerHour
	}
	stale := false
	err := postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		cur, err := postgres.LockPod(ctx, tx, pod.ID)
		if err != nil {
			return err
		}
		if cur.Status != gpubroker.PodProvisioning {
			// Given up (and refunded) while this launch was under way: the instance must go.
			stale = true
			cur.Provider, cur.InstanceID = &inst.Provider, &inst.ID
			return terminateInstanceTx(ctx, tx, cur, true)
		}
		if err := postgres.UpdatePod(ctx, tx, pod.ID, set); err != nil {
			return err
		}
		return postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: deref(pod.AccountID), OrderID: pod.OrderID, PodID: pod.ID, Action: gpubroker.ActionPodLaunched, Detail: map[string]any{"provider": inst.Provider, "instance_id": inst.ID}})
	})
	if err != nil || stale {
		return err
	}
	return river.JobSnooze(d.PollInterval)
}

func (w *ProvisionWorker) poll(ctx context.Context, pod *gpubroker.Pod) error {
	d := w.d
	p, ok := d.Broker.Provider(deref(pod.Provider))
	if !ok {
		return fmt.Errorf("pod %s runs at provider %q, which is not configured", pod.ID, deref(pod.Provider))
	}
	inst, err := p.GetInstance(ctx, *pod.InstanceID)
	if errors.Is(err, gpu.ErrRateLimited) {
		if w.pastDeadline(pod) {
			return w.giveUp(ctx, pod, "The GPU did not finish booting in time.")
		}
		return river.JobSnooze(max(gpu.RetryAfter(err), d.PollInterval))
	}
	if err != nil && !errors.Is(err, gpu.ErrNotFound) {
		return fmt.Errorf("error polling instance: %w", err)
	}
	switch {
	case err == nil && inst.State == gpu.StateRunning:
		// The provider's word is not the customer's: the pod runs, and its paid time starts,
		// only once what they are shown answers.
		uerr := d.Ready.Check(ctx, w.target(pod, inst))
		if uerr == nil && len(pod.SSHKeyFingerprints) > 0 && inst.SSHHost == "" {
			// RunPod reports ssh.direct only once its port is mapped: without it the customer
			// would be told the pod has no key. Wait for it as for any other part.
			uerr = errors.New("no SSH address yet")
		}
		if uerr == nil {
			return w.running(ctx, pod, inst)
		}
		d.Logger.InfoContext(ctx, "instance running at its provider, not usable yet", "pod_id", pod.ID, "instance_id", *pod.InstanceID, "why", uerr)
		return w.waitBoot(ctx, pod, "it never became usable: "+uerr.Error())
	case err != nil || inst.State == gpu.StateFailed || !inst.State.Live():
		// The instance died while booting: forget it, never use that offer again for this pod,
		// and launch elsewhere on the next run.
		reason := ""
		if inst != nil {
			reason = inst.Error
		}
		d.Logger.WarnContext(ctx, "instance failed while booting", "pod_id", pod.ID, "instance_id", *pod.InstanceID, "error", err, "reason", reason)
		return w.relaunch(ctx, pod)
	}
	// Pending, booting, or a status the client cannot interpret (gpu.StateUnknown): not known
	// to be dead, so wait for it as for a slow boot, until the boot deadline.
	return w.waitBoot(ctx, pod, "it did not boot")
}

// waitBoot waits for a launched instance that is not usable yet, within bounds: past the
// provisioning deadline the pod is given up (and refunded in full); past the boot deadline of
// this instance (an image that never boots, an IDE that never answers) the instance is given
// up and the pod launched at the next offer.
func (w *ProvisionWorker) waitBoot(ctx context.Context, pod *gpubroker.Pod, why string) error {
	d := w.d
	if w.pastDeadline(pod) {
		return w.giveUp(ctx, pod, "The GPU did not become usable in time.")
	}
	if pod.LaunchedAt != nil && d.now().Sub(*pod.LaunchedAt) > d.BootDeadline {
		d.Logger.WarnContext(ctx, "instance given up at its boot deadline; launching at the next offer", "pod_id", pod.ID,
			"instance", deref(pod.Provider)+"/"+deref(pod.InstanceID), "offer", deref(pod.OfferID), "why", why)
		if err := postgres.Audit(ctx, d.Pool, postgres.AuditEvent{AccountID: deref(pod.AccountID), OrderID: pod.OrderID, PodID: pod.ID, Action: gpubroker.ActionPodBootAbandoned,
			Detail: map[string]any{"provider": deref(pod.Provider), "instance_id": deref(pod.InstanceID), "offer": deref(pod.OfferID), "why": why}}); err != nil {
			return err
		}
		return w.relaunch(ctx, pod)
	}
	return river.JobSnooze(d.PollInterval)
}

// relaunch forgets the pod's instance, marks its offer failed for this pod and ends the
// instance, so the next run launches at the next offer under the same name.
func (w *ProvisionWorker) relaunch(ctx context.Context, pod *gpubroker.Pod) error {
	err := postgres.Tx(ctx, w.d.Pool, func(tx pgx.Tx) error {
		if pod.OfferID != nil {
			if err := postgres.AddFailedOffer(ctx, tx, pod.ID, *pod.OfferID); err != nil {
				return err
			}
		}
		if err := postgres.ForgetInstance(ctx, tx, pod.ID); err != nil {
			return err
		}
		return terminateInstanceTx(ctx, tx, pod, false) // the pod launches again under its name
	})
	if err != nil {
		return err
	}
	return river.JobSnooze(time.Millisecond)
}

// target is what the pod's customer is shown of inst, and so what must answer: the SSH address
// when the pod has one of their keys, and the IDE link with its secret.
func (w *ProvisionWorker) target(pod *gpubroker.Pod, inst *gpu.Instance) ready.Target {
	t := ready.Target{IDE: gpu.IDEJupyter, URL: inst.JupyterURL, Secret: pod.IDESecret}
	if inst.IDESecret != "" { // the provider's own IDE, with its own secret (Lambda's Jupyter)
		t.Secret = inst.IDESecret
	}
	if inst.JupyterURL == "" && inst.CodeServerURL != "" {
		t.IDE, t.URL = gpu.IDECodeServer, inst.CodeServerURL
	}
	if tpl, ok := w.d.Catalog.Template(pod.Template); ok && tpl.IDE == gpu.IDECodeServer {
		t.IDE, t.URL = gpu.IDECodeServer, inst.CodeServerURL
	}
	if len(pod.SSHKeyFingerprints) > 0 && inst.SSHHost != "" {
		port := inst.SSHPort
		if port == 0 {
			port = 22
		}
		t.SSHAddr = net.JoinHostPort(inst.SSHHost, strconv.Itoa(port))
	}
	return t
}

// running stores the connection details, emails the user and schedules the end, in one
// transaction.
func (w *ProvisionWorker) running(ctx context.Context, pod *gpubroker.Pod, inst *gpu.Instance) error {
	d := w.d
	now := d.now()
	ends := now.Add(d.Clock.Hours(pod.Hours))
	conn := gpubroker.Connection{JupyterURL: inst.JupyterURL, CodeServerURL: inst.CodeServerURL}
	if len(pod.SSHKeyFingerprints) > 0 {
		// Without a key of theirs the customer cannot log in, whatever the provider offers.
		conn.SSH = sshCommand(inst)
	}
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		set := gpubroker.PodUpdate{Connection: &conn, StartedAt: &now, EndsAt: &ends}
		if inst.IDESecret != "" {
			// The customer logs in with the provider's secret (Lambda's jupyter_token), not ours.
			set.IDESecret = &inst.IDESecret
		}
		ok, err := lifecycle.MovePod(ctx, tx, pod, gpubroker.PodProvisioning, gpubroker.PodRunning, set, nil)
		if err != nil || !ok {
			return err
		}
		pod, err := postgres.GetPod(ctx, tx, pod.ID)
		if err != nil {
			return err
		}
		o, err := postgres.GetOrder(ctx, tx, pod.OrderID)
		if err != nil {
			return err
		}
		if err := lifecycle.QueueEmailTx(ctx, tx, client(ctx), gpubroker.MailPodReady, o.Email, "pod_ready:"+pod.ID, mailData(d, o.Name, o.Email, pod, "")); err != nil {
			return err
		}
		if err := reminderTx(ctx, tx, pod.ID, pod.Hours, ends, d.Clock); err != nil {
			return err
		}
		_, err = client(ctx).InsertTx(ctx, tx, TerminateArgs{PodID: pod.ID, EndsAt: &ends}, &river.InsertOpts{ScheduledAt: ends})
		return err
	})
}

func sshCommand(inst *gpu.Instance) string {
	if inst.SSHHost == "" {
		return ""
	}
	user := inst.SSHUser
	if user == "" {
		user = "root"
	}
	cmd := "ssh " + user + "@" + inst.SSHHost
	if inst.SSHPort != 0 && inst.SSHPort != 22 {
		cmd += " -p " + strconv.Itoa(inst.SSHPort)
	}
	return cmd
}

// pastDeadline reports whether the pod has been provisioning longer than the deadline, counted
// from the capture: a capture that took long after a Stripe outage still gets its full try.
func (w *ProvisionWorker) pastDeadline(pod *gpubroker.Pod) bool {
	start := pod.CreatedAt
	if pod.CapturedAt != nil {
		start = *pod.CapturedAt
	}
	return w.d.now().Sub(start) > w.d.ProvisionDeadline
}

// giveUp ends a pod that cannot be started, in one transaction: the pod becomes failed (a
// terminal state, so a late provision run stops), whatever it may have launched goes to the
// terminate_instance job, and a paid pod's refund job is queued, the pod's note saying the
// refund is pending until that job has made it. It changes nothing when the pod is no longer
// provisioning (another run got it running, or gave up first).
func (w *ProvisionWorker) giveUp(ctx context.Context, pod *gpubroker.Pod, reason string) error {
	d := w.d
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		note := reason
		if pod.OrderStatus != gpubroker.OrderFree {
			note = reason + " " + refundPending
		}
		ok, err := lifecycle.MovePod(ctx, tx, pod, gpubroker.PodProvisioning, gpubroker.PodFailed, gpubroker.PodUpdate{Error: &note}, map[string]any{"reason": reason})
		if err != nil || !ok {
			return err
		}
		if err := terminateInstanceTx(ctx, tx, pod, true); err != nil {
			return err
		}
		if pod.OrderStatus == gpubroker.OrderFree {
			o, err := postgres.GetOrder(ctx, tx, pod.OrderID)
			if err != nil {
				return err
			}
			return lifecycle.QueueEmailTx(ctx, tx, client(ctx), gpubroker.MailPodFailed, o.Email, "pod_failed:"+pod.ID, mailData(d, o.Name, o.Email, pod, reason))
		}
		_, err = client(ctx).InsertTx(ctx, tx, RefundArgs{PodID: pod.ID, Reason: reason}, nil)
		return err
	})
}
