package api

import (
	"bytes"
	"encoding/json"
	"gpubroker"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"gpubroker/postgres"
)

// maxAdminActionBody bounds the body AuditAdmin reads: a River UI action names at most 1000
// jobs, a few tens of KB.
const maxAdminActionBody = 1 << 20

// AuditAdmin audits every admin action taken through next, an ops handler that lives outside
// the router (the River UI: retry, cancel and delete jobs; pause, resume and change queues).
// Any request that is not a read (GET, HEAD, OPTIONS) is recorded as ops.riverui_action with
// the actor admin:<user>, its method and path and, for job actions, the ids of the jobs from
// the JSON body ({"ids": [...]}), whose bytes are handed on to next unchanged. The event is
// written before next runs: when it cannot be written the action is refused (503), so no
// admin action goes unaudited. Wrap it inside AdminAuth, so only authenticated requests count.
func AuditAdmin(pool *pgxpool.Pool, user string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		detail := map[string]any{"actor": "admin:" + user, "method": r.Method, "path": r.URL.Path}
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminActionBody+1))
			_ = r.Body.Close()
			switch {
			case err != nil:
				writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "bad_request", Message: "The request body could not be read."})
				return
			case len(body) > maxAdminActionBody:
				writeJSON(w, http.StatusRequestEntityTooLarge, ErrorBody{Error: "too_large", Message: "The request body is too large."})
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if ids := actionJobIDs(body); len(ids) > 0 {
				detail["job_ids"] = ids
			}
		}
		if err := postgres.Audit(r.Context(), pool, postgres.AuditEvent{Action: gpubroker.ActionOpsRiveruiAction, Detail: detail}); err != nil {
			logger(r).ErrorContext(r.Context(), "error auditing an admin action; refused", "method", r.Method, "path", r.URL.Path, "error", err)
			writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: "audit_unavailable",
				Message: "The action could not be recorded in the audit log, so it was not taken. Try again."})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// actionJobIDs reads the job ids of a River UI job action ({"ids": ["12", 13]}: River UI sends
// int64s as strings); anything else has none.
func actionJobIDs(body []byte) []int64 {
	var req struct {
		IDs []json.RawMessage `json:"ids"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil
	}
	var ids []int64
	for _, raw := range req.IDs {
		if id, err := strconv.ParseInt(strings.Trim(string(raw), `"`), 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	return ids
}
