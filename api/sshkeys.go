package api

import (
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/julienschmidt/httprouter"

	"gpubroker"
	"gpubroker/postgres"
)

// sshKeyJSON is an SSH key as the API shows it: never the key material, which the customer
// already has, only what tells keys apart.
type sshKeyJSON struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
}

func toSSHKeyJSON(k gpubroker.SSHKey) sshKeyJSON {
	return sshKeyJSON{ID: k.ID, Name: k.Name, Type: k.Type, Fingerprint: k.Fingerprint, CreatedAt: k.CreatedAt}
}

func (s *Server) handleListSSHKeys(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	acct := s.account(w, r)
	if acct == nil {
		return
	}
	keys, err := postgres.ListSSHKeys(r.Context(), s.Pool, acct.ID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]sshKeyJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, toSSHKeyJSON(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"ssh_keys": out})
}

type addSSHKeyRequest struct {
	Name      string `json:"name"`
	PublicKey string `json:"public_key"`
}

func (s *Server) handleAddSSHKey(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	acct := s.account(w, r)
	if acct == nil {
		return
	}
	var req addSSHKeyRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	k, err := gpubroker.NewSSHKey(req.Name, req.PublicKey)
	if err != nil {
		writeError(w, r, err)
		return
	}
	k.AccountID = acct.ID
	ctx := r.Context()
	// On a pending account the key is provisional and belongs to the checkout whose cookie
	// opened this session (the payer); activation keeps it only for that payer.
	var payer string
	if acct.Status == gpubroker.AccountPending {
		c, _ := r.Cookie(SessionCookie) // s.account found the session, so the cookie is there
		if payer, err = postgres.SessionPayerOrder(ctx, s.Pool, c.Value); err != nil {
			writeError(w, r, err)
			return
		}
	}
	var added *gpubroker.SSHKey
	err = postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		if added, err = postgres.AddSSHKey(ctx, tx, k, payer); err != nil {
			return err
		}
		return postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: acct.ID, Action: gpubroker.ActionSshKeyAdded, Detail: map[string]any{"fingerprint": k.Fingerprint, "type": k.Type}})
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toSSHKeyJSON(*added))
}

func (s *Server) handleDeleteSSHKey(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	acct := s.account(w, r)
	if acct == nil {
		return
	}
	ctx := r.Context()
	err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		if err := postgres.DeleteSSHKey(ctx, tx, acct.ID, ps.ByName("id")); err != nil {
			return err
		}
		return postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: acct.ID, Action: gpubroker.ActionSshKeyDeleted, Detail: map[string]any{"id": ps.ByName("id")}})
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
