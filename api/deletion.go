package api

import (
	"context"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/mail"
	"gpubroker/postgres"
)

// requestDeletion is DELETE /api/me: it emails the signed-in account a one-time link that
// confirms its deletion (deleteAccount), the token and the outbox row in one transaction.
// While a pod is up or a card hold is not yet released it refuses, 409 pod_active, saying which.
func (s *Server) requestDeletion(ctx context.Context, c *call, _ *noBody) (*Status, error) {
	acct := c.account
	err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		why, err := postgres.DeletionBlocker(ctx, tx, acct.ID)
		if err != nil {
			return err
		}
		if why != "" {
			return &gpubroker.Error{Code: gpubroker.ECONFLICT, Reason: "pod_active", Message: why}
		}
		token, err := postgres.IssueToken(ctx, tx, acct.ID, gpubroker.TokenDeletion, s.now())
		if err != nil {
			return err
		}
		link, expiresIn := mail.TokenLink(s.PublicURL, gpubroker.TokenDeletion, token)
		return lifecycle.QueueEmailTx(ctx, tx, s.Jobs, gpubroker.MailAccountDeletion, acct.Email, "",
			mail.Data{Name: acct.Name, Email: acct.Email, Link: link, ExpiresIn: expiresIn})
	})
	if err != nil {
		return nil, err
	}
	return &Status{Status: "confirmation_sent", Message: "We have emailed you a link. Follow it to delete your account."}, nil
}

// deleteAccount is POST /api/me/delete {token}: the emailed link is the proof, no session is
// needed. In one transaction it spends the token and removes the account's personal data
// (postgres.DeleteAccount); orders and payments stay, anonymised. It ends this browser's
// session cookie too (every session of the account is already gone).
func (s *Server) deleteAccount(ctx context.Context, c *call, req *TokenRequest) (*Status, error) {
	if err := s.allow(c, "token:ip:"+s.rateNet(c.r), 30, 10*time.Minute); err != nil {
		return nil, err
	}
	err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		id, err := postgres.ConsumeToken(ctx, tx, req.Token, gpubroker.TokenDeletion, s.now())
		if err != nil {
			return err
		}
		return postgres.DeleteAccount(ctx, tx, id)
	})
	if err != nil {
		return nil, err
	}
	http.SetCookie(c.w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.SecureCookies, SameSite: http.SameSiteLaxMode})
	return &Status{Status: "deleted", Message: "Your account is deleted. Your orders and payments are kept, anonymised, for accounting."}, nil
}
