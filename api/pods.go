package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/julienschmidt/httprouter"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/postgres"
)

// lockOwnPod locks one of the account's pods for the rest of tx. Any other pod is not found,
// so nobody learns that another account's pod exists.
func lockOwnPod(ctx context.Context, tx pgx.Tx, accountID, id string) (*gpubroker.Pod, error) {
	pod, err := postgres.LockPod(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if pod.AccountID == nil || *pod.AccountID != accountID {
		return nil, gpubroker.Errorf(gpubroker.ENOTFOUND, "not_found", "pod not found")
	}
	return pod, nil
}

func (s *Server) pod(ctx context.Context, c *call, _ *noBody) (*Pod, error) {
	pod, err := postgres.GetAccountPod(ctx, s.Pool, c.account.ID, c.param("id"))
	if err != nil {
		return nil, err
	}
	view, err := s.podView(ctx, c.account, pod)
	if err != nil {
		return nil, err
	}
	return &view, nil
}

// deploy starts the capture → provision chain. Under the pod's row lock it moves the pod from
// configured to deploying and enqueues the capture job in the same transaction, so three
// concurrent clicks make one capture; later clicks see deploying and get 202 again.
func (s *Server) deploy(ctx context.Context, c *call, _ *noBody) (*Status, error) {
	err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		pod, err := lockOwnPod(ctx, tx, c.account.ID, c.param("id"))
		if err != nil {
			return err
		}
		return lifecycle.Deploy(ctx, tx, s.Jobs, c.account, pod, s.now())
	})
	if err != nil {
		return nil, err
	}
	return &Status{Status: string(gpubroker.PodDeploying)}, nil
}

// terminate enqueues the end of a running pod and, for a paid one, the refund of the minutes it
// will not use (gpubroker.UnusedMinutesCents), in the transaction that moves it to
// terminating; repeated calls are harmless.
func (s *Server) terminate(ctx context.Context, c *call, _ *noBody) (*Status, error) {
	var podStatus gpubroker.PodStatus
	err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		pod, err := lockOwnPod(ctx, tx, c.account.ID, c.param("id"))
		if err != nil {
			return err
		}
		podStatus, err = lifecycle.Terminate(ctx, tx, s.Jobs, logger(c.r), s.Clock, pod, s.now())
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Status{Status: string(podStatus)}, nil
}

type bootRequest struct {
	Step   string `json:"step"`
	OK     *bool  `json:"ok"`
	Detail string `json:"detail"`
}

// maxBootDetail bounds a step's detail: a line of a log, not the log.
const maxBootDetail = 500

// handleBoot records a step the pod's bootstrap reports, proven by the pod's boot secret as a
// bearer token (never a cookie: this is the instance, not the customer). The steps are shown on
// the pod and never trusted for billing: readiness is the worker's own check.
func (s *Server) handleBoot(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || secret == "" {
		writeError(w, r, gpubroker.Errorf(gpubroker.EUNAUTHORIZED, "unauthorized", "The pod's boot secret is required as a bearer token."))
		return
	}
	var req bootRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	fields := map[string]string{}
	if !slices.Contains(gpubroker.BootStepNames, req.Step) {
		fields["step"] = "One of " + strings.Join(gpubroker.BootStepNames, ", ") + "."
	}
	if req.OK == nil {
		fields["ok"] = "true or false."
	}
	if len(req.Detail) > maxBootDetail {
		fields["detail"] = fmt.Sprintf("At most %d bytes.", maxBootDetail)
	}
	if len(fields) > 0 {
		writeError(w, r, &gpubroker.Error{Code: gpubroker.EINVALID, Reason: "invalid_fields", Message: "This is not a boot step.", Fields: fields})
		return
	}
	ctx := r.Context()
	err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		return postgres.RecordBootStep(ctx, tx, ps.ByName("id"), secret, gpubroker.BootStep{At: s.now(), Step: req.Step, OK: *req.OK, Detail: req.Detail})
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
