package api

import (
	"context"
	"time"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/postgres"
)

// podView is a pod's JSON as its owner acct sees it, with what the dashboard shows decided
// here, so the page re-derives no rule: deploy_blocked, refund_if_stopped_cents (and minutes),
// refund_due_cents and extendable_hours. Read only.
func (s *Server) podView(ctx context.Context, acct *gpubroker.Account, p *gpubroker.Pod) (Pod, error) {
	out, err := s.podViews(ctx, acct, []*gpubroker.Pod{p})
	if err != nil {
		return Pod{}, err
	}
	return out[0], nil
}

// podViews is podView for a list of the account's pods, with one ledger query for the list and
// a few more per running or just-ended paid pod.
func (s *Server) podViews(ctx context.Context, acct *gpubroker.Account, pods []*gpubroker.Pod) ([]Pod, error) {
	now := s.now()
	ids := make([]string, 0, len(pods))
	var ended []string // paid pods that ran and ended: a refund of their unused minutes may be queued
	for _, p := range pods {
		ids = append(ids, p.ID)
		if p.Status.Ended() && p.StartedAt != nil && p.OrderStatus == gpubroker.OrderCaptured {
			ended = append(ended, p.ID)
		}
	}
	due, err := postgres.RefundsDue(ctx, s.Pool, ids)
	if err != nil {
		return nil, err
	}
	stops, err := postgres.UnplannedRefundStops(ctx, s.Pool, ended)
	if err != nil {
		return nil, err
	}
	out := make([]Pod, 0, len(pods))
	for _, p := range pods {
		j := s.podJSON(p)
		j.DeployBlocked = deployBlocked(acct, p, now)
		j.RefundDueCents = due[p.ID]
		paid := p.OrderStatus == gpubroker.OrderCaptured && p.HourlyCents > 0
		switch stopped, queued := stops[p.ID]; {
		case p.Status == gpubroker.PodRunning && paid && p.StartedAt != nil:
			u, err := s.unusedRefund(ctx, p, now)
			if err != nil {
				return nil, err
			}
			j.RefundIfStoppedCents, j.RefundIfStoppedMinutes = u.Cents, u.Minutes()
			room, limited, _, _, err := s.extensionRoom(ctx, s.Pool, p)
			if err != nil {
				return nil, err
			}
			j.ExtendableHours = &room
			if !limited {
				j.ExtendableHours = nil
			}
		case queued:
			// Ended, its refund queued with the stop time and not yet planned: decided, so due.
			u, err := s.unusedRefund(ctx, p, stopped)
			if err != nil {
				return nil, err
			}
			j.RefundDueCents += u.Cents
		case p.Status == gpubroker.PodFailed && p.StartedAt == nil && p.OrderStatus == gpubroker.OrderCaptured:
			// Captured and never started: refunded in full (the refund job), due until made.
			j.RefundDueCents = max(j.RefundDueCents, p.PaidCents-p.RefundedCents)
		}
		out = append(out, j)
	}
	return out, nil
}

// unusedRefund is what stopping the running pod at stopped refunds by the rental rule, from the
// ledger's payments, as lifecycle.PlanUnusedHoursRefund plans it (planning nothing).
func (s *Server) unusedRefund(ctx context.Context, p *gpubroker.Pod, stopped time.Time) (gpubroker.UnusedRefund, error) {
	payments, err := postgres.OrderPayments(ctx, s.Pool, p.OrderID)
	if err != nil {
		return gpubroker.UnusedRefund{}, err
	}
	bought := make([]gpubroker.BoughtPayment, 0, len(payments))
	for _, y := range payments {
		bought = append(bought, gpubroker.BoughtPayment{Payment: y.Payment, Hours: y.Hours})
	}
	return s.Clock.UnusedHoursRefund(*p.StartedAt, stopped, p.HourlyCents, bought), nil
}

// deployBlocked says why the owner may not press Deploy on the pod now, or nil when they may.
// Where POST /api/pods/{id}/deploy would refuse (lifecycle.Deploy), the reason is its error
// code; a pod on its way, running or ended has its own.
func deployBlocked(acct *gpubroker.Account, p *gpubroker.Pod, now time.Time) *DeployBlocked {
	b := func(reason, message string) *DeployBlocked {
		return &DeployBlocked{Reason: reason, Message: message}
	}
	switch p.Status {
	case gpubroker.PodConfigured:
	case gpubroker.PodDeploying, gpubroker.PodProvisioning:
		return b("in_progress", "Deployment is in progress.")
	case gpubroker.PodRunning:
		return b("running", "Your pod is running.")
	case gpubroker.PodFailed:
		if p.StartedAt != nil {
			return b("failed", "This pod stopped working.")
		}
		return b("failed", "This pod could not be started.")
	case gpubroker.PodTerminating:
		return b("terminating", "Stopping…")
	default:
		return b("ended", "This pod has ended.")
	}
	// What the deploy request itself would refuse, in its words (lifecycle.Deploy).
	if err := lifecycle.DeployRefusal(acct, p, now); err != nil {
		return b(gpubroker.ErrorReason(err), gpubroker.ErrorMessage(err))
	}
	return nil
}
