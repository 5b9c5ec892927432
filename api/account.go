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

// SessionCookie is the name of the session cookie.
const SessionCookie = "gb_session"

func (s *Server) startSession(w http.ResponseWriter, r *http.Request, accountID string) error {
	secret, expires, err := postgres.CreateSession(r.Context(), s.Pool, accountID, s.now())
	if err != nil {
		return err
	}
	s.setSessionCookie(w, secret, expires)
	return nil
}

// setSessionCookie hands the browser the secret of a session stored in the database.
func (s *Server) setSessionCookie(w http.ResponseWriter, secret string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: "/", Expires: expires,
		MaxAge: int(time.Until(expires).Seconds()), HttpOnly: true, Secure: s.SecureCookies, SameSite: http.SameSiteLaxMode})
}

// account returns the signed-in account or writes 401 (handlers outside serve; endpoints are
// served signedIn).
func (s *Server) account(w http.ResponseWriter, r *http.Request) *gpubroker.Account {
	a, err := s.sessionAccount(r)
	if err != nil {
		writeError(w, r, err)
		return nil
	}
	return a
}

// sessionAccount is the account of the request's session cookie; 401 without a valid one.
func (s *Server) sessionAccount(r *http.Request) (*gpubroker.Account, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil, gpubroker.Errorf(gpubroker.EUNAUTHORIZED, "unauthorized", "Sign in to continue.")
	}
	return postgres.SessionAccount(r.Context(), s.Pool, c.Value, s.now())
}

// consume spends a token of the given purpose and signs its account in.
func (s *Server) consume(ctx context.Context, c *call, req *TokenRequest, purpose string) (*SignIn, error) {
	r := c.r
	if err := s.allow(c, "token:ip:"+s.rateNet(r), 30, 10*time.Minute); err != nil {
		return nil, err
	}
	// The activating browser's own session, if any: the provisional one of the checkout that
	// created the account keeps the keys its payer added (ActivateAccount).
	var cookie string
	if ck, err := r.Cookie(SessionCookie); err == nil {
		cookie = ck.Value
	}
	var acct *gpubroker.Account
	err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		id, err := postgres.ConsumeToken(ctx, tx, req.Token, purpose, s.now())
		if err != nil {
			return err
		}
		// Following an emailed link proves the address: a sign-in link activates too.
		var dropped int
		if acct, dropped, err = lifecycle.ActivateAccount(ctx, tx, id, cookie, s.now()); err != nil {
			return err
		}
		if dropped > 0 {
			if err := postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: id, Action: gpubroker.ActionSshKeysDropped, Detail: map[string]any{"keys": dropped, "why": "added before activation by a browser other than the one activating"}}); err != nil {
				return err
			}
		}
		return postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: id, Action: gpubroker.AccountSignInAction(purpose)})
	})
	if err != nil {
		return nil, err
	}
	if err := s.startSession(c.w, r, acct.ID); err != nil {
		return nil, err
	}
	return &SignIn{Account: toAccountJSON(acct)}, nil
}

func (s *Server) activate(ctx context.Context, c *call, req *TokenRequest) (*SignIn, error) {
	return s.consume(ctx, c, req, gpubroker.TokenActivation)
}

func (s *Server) loginVerify(ctx context.Context, c *call, req *TokenRequest) (*SignIn, error) {
	return s.consume(ctx, c, req, gpubroker.TokenLogin)
}

// sendLink emails a fresh activation (pending accounts) or sign-in link. It always answers 202,
// so nobody can learn which emails have accounts.
func (s *Server) sendLink(ctx context.Context, c *call, req *EmailRequest, purpose string) (*Status, error) {
	email := gpubroker.NormalizeEmail(req.Email)
	if !gpubroker.ValidEmail(email) {
		return nil, &gpubroker.Error{Code: gpubroker.EINVALID, Reason: "invalid_fields", Message: "Enter a valid email address.", Fields: map[string]string{"email": "Enter a valid email address."}}
	}
	if err := s.allow(c, purpose+":ip:"+s.rateNet(c.r), 20, time.Hour); err != nil {
		return nil, err
	}
	if err := s.allow(c, purpose+":email:"+gpubroker.Mailbox(email), 5, time.Hour); err != nil {
		return nil, err
	}
	err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		acct, err := postgres.GetAccountByEmail(ctx, tx, email)
		if gpubroker.ErrorCode(err) == gpubroker.ENOTFOUND {
			return nil
		} else if err != nil {
			return err
		}
		// A pending account gets a new activation link whichever was asked for: following it
		// proves the address and signs in.
		tokenPurpose, kind := gpubroker.TokenLogin, gpubroker.MailLogin
		if acct.Status == gpubroker.AccountPending {
			tokenPurpose, kind = gpubroker.TokenActivation, gpubroker.MailActivation
		} else if purpose == gpubroker.TokenActivation {
			return nil // already active: nothing to resend
		}
		token, err := postgres.IssueToken(ctx, tx, acct.ID, tokenPurpose, s.now())
		if err != nil {
			return err
		}
		link, expiresIn := mail.TokenLink(s.PublicURL, tokenPurpose, token)
		return lifecycle.QueueEmailTx(ctx, tx, s.Jobs, kind, acct.Email, "", mail.Data{Name: acct.Name, Email: acct.Email, Link: link, ExpiresIn: expiresIn})
	})
	if err != nil {
		return nil, err
	}
	return &Status{Status: "sent", Message: "If an account exists for that address, we have emailed it a link."}, nil
}

func (s *Server) resend(ctx context.Context, c *call, req *EmailRequest) (*Status, error) {
	return s.sendLink(ctx, c, req, gpubroker.TokenActivation)
}

func (s *Server) login(ctx context.Context, c *call, req *EmailRequest) (*Status, error) {
	return s.sendLink(ctx, c, req, gpubroker.TokenLogin)
}

func (s *Server) logout(ctx context.Context, c *call, _ *noBody) (*noContent, error) {
	if ck, err := c.r.Cookie(SessionCookie); err == nil {
		if err := postgres.DeleteSession(ctx, s.Pool, ck.Value); err != nil {
			return nil, err
		}
	}
	http.SetCookie(c.w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.SecureCookies, SameSite: http.SameSiteLaxMode})
	return &noContent{}, nil
}

func (s *Server) me(ctx context.Context, c *call, _ *noBody) (*Me, error) {
	acct := c.account
	pods, err := postgres.ListAccountPods(ctx, s.Pool, acct.ID)
	if err != nil {
		return nil, err
	}
	receipts, err := s.receipts(c.r, acct.ID)
	if err != nil {
		return nil, err
	}
	views, err := s.podViews(ctx, acct, pods)
	if err != nil {
		return nil, err
	}
	out := &Me{Account: toAccountJSON(acct), Pods: views, Receipts: receipts}
	// The Pro fee buys PlanFeePeriod: get-started prices without it until then.
	until, err := postgres.PlanFeePaidUntil(ctx, s.Pool, acct.ID, "pro")
	if err != nil {
		return nil, err
	}
	if until.After(s.now()) {
		out.ProActiveUntil = &until
	}
	return out, nil
}
