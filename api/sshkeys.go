package api

import (
	"context"

	"github.com/jackc/pgx/v5"

	"gpubroker"
	"gpubroker/postgres"
)

func toSSHKeyJSON(k gpubroker.SSHKey) SSHKey {
	return SSHKey{ID: k.ID, Name: k.Name, Type: k.Type, Fingerprint: k.Fingerprint, CreatedAt: k.CreatedAt}
}

func (s *Server) listSSHKeys(ctx context.Context, c *call, _ *noBody) (*SSHKeys, error) {
	keys, err := postgres.ListSSHKeys(ctx, s.Pool, c.account.ID)
	if err != nil {
		return nil, err
	}
	out := &SSHKeys{SSHKeys: make([]SSHKey, 0, len(keys))}
	for _, k := range keys {
		out.SSHKeys = append(out.SSHKeys, toSSHKeyJSON(k))
	}
	return out, nil
}

func (s *Server) addSSHKey(ctx context.Context, c *call, req *AddSSHKeyRequest) (*SSHKey, error) {
	acct := c.account
	k, err := gpubroker.NewSSHKey(req.Name, req.PublicKey)
	if err != nil {
		return nil, err
	}
	k.AccountID = acct.ID
	// On a pending account the key is provisional and belongs to the checkout whose cookie
	// opened this session (the payer); activation keeps it only for that payer.
	var payer string
	if acct.Status == gpubroker.AccountPending {
		ck, _ := c.r.Cookie(SessionCookie) // serve found the session, so the cookie is there
		if payer, err = postgres.SessionPayerOrder(ctx, s.Pool, ck.Value); err != nil {
			return nil, err
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
		return nil, err
	}
	key := toSSHKeyJSON(*added)
	return &key, nil
}

func (s *Server) deleteSSHKey(ctx context.Context, c *call, _ *noBody) (*noContent, error) {
	acct, id := c.account, c.param("id")
	err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		if err := postgres.DeleteSSHKey(ctx, tx, acct.ID, id); err != nil {
			return err
		}
		return postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: acct.ID, Action: gpubroker.ActionSshKeyDeleted, Detail: map[string]any{"id": id}})
	})
	if err != nil {
		return nil, err
	}
	return &noContent{}, nil
}
