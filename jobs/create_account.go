package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/gpu"
	"gpubroker/lifecycle"
	"gpubroker/mail"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// CreateAccountArgs is tasks.CreateAccountArgs: the workers' name for it.
type CreateAccountArgs = tasks.CreateAccountArgs

// CreateAccountWorker runs CreateAccountArgs.
type CreateAccountWorker struct {
	river.WorkerDefaults[CreateAccountArgs]
	d *Deps
}

// Work implements river.Worker.
func (w *CreateAccountWorker) Work(ctx context.Context, job *river.Job[CreateAccountArgs]) error {
	return postgres.Tx(ctx, w.d.Pool, func(tx pgx.Tx) error {
		o, err := postgres.GetOrderForUpdate(ctx, tx, job.Args.OrderID)
		if err != nil {
			return err
		}
		if o.AccountID != nil {
			return nil // done by an earlier run
		}
		return attachAccount(ctx, tx, client(ctx), w.d, o)
	})
}

// attachAccount gives an order its account: the existing account of the email, or a new one
// (never two per email), writes the audit log, sends the activation email to a pending account
// and, for a paid order, schedules the release of the hold and tells an active account's owner
// the pod is waiting (deploy by the release). The caller holds the order's lock.
func attachAccount(ctx context.Context, tx pgx.Tx, ins Inserter, d *Deps, o *gpubroker.Order) error {
	acct, created, err := postgres.UpsertAccount(ctx, tx, o.Email, o.Name, o.ID)
	if err != nil {
		return err
	}
	if err := postgres.AttachOrder(ctx, tx, o.ID, acct.ID); err != nil {
		return err
	}
	if err := saveCheckoutKey(ctx, tx, d, o.ID, acct, created); err != nil {
		return err
	}
	action := gpubroker.ActionOrderAttached
	if created {
		action = gpubroker.ActionAccountCreated
	}
	if err := postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: acct.ID, OrderID: o.ID, Action: action, Detail: map[string]any{"email": acct.Email}}); err != nil {
		return err
	}
	if acct.Status == gpubroker.AccountPending {
		token, err := postgres.IssueToken(ctx, tx, acct.ID, gpubroker.TokenActivation, d.now())
		if err != nil {
			return err
		}
		link, expiresIn := mail.TokenLink(d.PublicURL, gpubroker.TokenActivation, token)
		err = lifecycle.QueueEmailTx(ctx, tx, ins, gpubroker.MailActivation, acct.Email, "activation:"+o.ID, mail.Data{
			Name: acct.Name, Email: acct.Email, Link: link, ExpiresIn: expiresIn,
		})
		if err != nil {
			return err
		}
	}
	if o.Status == gpubroker.OrderAuthorized || o.Status == gpubroker.OrderCheckoutPending {
		// A margin before the hold's own deadline (Stripe's capture_before, stored as
		// hold_expires_at by AuthorizeOrder).
		at := d.Clock.HoldReleaseAt(gpubroker.HoldDeadline(d.now(), time.Time{}))
		if o.HoldExpiresAt != nil {
			at = d.Clock.HoldReleaseAt(*o.HoldExpiresAt)
		}
		if _, err := ins.InsertTx(ctx, tx, ReleaseHoldArgs{OrderID: o.ID}, &river.InsertOpts{ScheduledAt: at}); err != nil {
			return err
		}
		// A returning customer (the order landed on an active account) gets no activation
		// email: tell them the pod is waiting and by when to deploy it (when the hold is
		// released, the pod JSON's deploy_by). Once per order, however often this runs.
		if acct.Status == gpubroker.AccountActive && o.Status == gpubroker.OrderAuthorized {
			pod, err := postgres.GetOrderPod(ctx, tx, o.ID)
			if err != nil {
				return err
			}
			md := mailData(d, acct.Name, acct.Email, pod, "")
			md.Pod.DeployBy = at
			if err := lifecycle.QueueEmailTx(ctx, tx, ins, gpubroker.MailPodWaiting, acct.Email, gpubroker.MailPodWaiting+":"+o.ID, md); err != nil {
				return err
			}
		}
	}
	d.Logger.InfoContext(ctx, "account ready", "account_id", acct.ID, "order_id", o.ID, "created", created)
	return nil
}

// saveCheckoutKey saves the SSH key typed at an order's checkout on the account the order
// landed on, when the buyer may add keys to it: the account this order created, or the one
// the buyer was signed in to. Anyone can pay with someone else's email; their key must not
// reach that person's pods. A key already there, or one over the limit, is left out.
func saveCheckoutKey(ctx context.Context, tx pgx.Tx, d *Deps, orderID string, acct *gpubroker.Account, created bool) error {
	line, signedIn, err := postgres.OrderSSHKey(ctx, tx, orderID, acct.ID)
	if err != nil || line == "" {
		return err
	}
	if !created && !signedIn {
		d.Logger.InfoContext(ctx, "checkout key not saved: the buyer was not signed in to this existing account", "order_id", orderID, "account_id", acct.ID)
		return nil
	}
	k, err := gpubroker.NewSSHKey("", line)
	if err != nil {
		return nil // validated at checkout; the rules may have tightened since
	}
	k.AccountID = acct.ID
	// On the pending account this order created, the key belongs to this checkout's payer.
	if _, err := postgres.AddSSHKey(ctx, tx, k, orderID); err != nil {
		if c := gpubroker.ErrorCode(err); c == gpubroker.ECONFLICT || c == gpubroker.EINVALID {
			return nil
		}
		return err
	}
	return postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: acct.ID, OrderID: orderID, Action: gpubroker.ActionSshKeyAdded, Detail: map[string]any{"fingerprint": k.Fingerprint, "via": "checkout"}})
}

// podMail is the pod part of an email.
func podMail(d *Deps, p *gpubroker.Pod) mail.Pod {
	m := mail.Pod{ID: p.ID, GPU: p.GPU, Region: d.Catalog.RegionName(p.Region), Hours: p.Hours, Template: p.Template, AmountCents: p.AmountCents}
	// What the dashboard says (hours_total, paid_cents, read with the pod by postgres.GetPod):
	// the hours bought and what was paid, extensions included; the order's own before Deploy's
	// capture (a hold, a failed start, a free trial).
	if p.HoursTotal > m.Hours {
		m.Hours = p.HoursTotal
	}
	if p.PaidCents > 0 {
		m.AmountCents = p.PaidCents
	}
	if g, ok := d.Catalog.GPUType(p.GPU); ok {
		m.GPU = g.DisplayName
	}
	if t, ok := d.Catalog.Template(p.Template); ok {
		m.Template = t.Name
		m.StarterProject = t.Workspace.Path
	}
	if p.Connection != nil {
		m.SSH, m.JupyterURL, m.CodeServerURL = p.Connection.SSH, p.Connection.JupyterURL, p.Connection.CodeServerURL
		m.JupyterURL = gpu.IDELink(m.JupyterURL, gpu.IDEJupyter, p.IDESecret)
		m.NoSSHKey = m.SSH == ""
	}
	if p.EndsAt != nil {
		m.EndsAt = *p.EndsAt
	}
	if p.TerminatedAt != nil {
		m.EndedAt = *p.TerminatedAt
	}
	return m
}

// mailData is the usual data of a pod email: the pod and a link to the dashboard.
func mailData(d *Deps, name, email string, p *gpubroker.Pod, reason string) mail.Data {
	return mail.Data{Name: name, Email: email, Link: d.PublicURL + "/dashboard/", Pod: podMail(d, p), Reason: reason}
}
