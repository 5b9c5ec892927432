package api

import (
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/julienschmidt/httprouter"

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

// account returns the signed-in account or writes 401.
func (s *Server) account(w http.ResponseWriter, r *http.Request) *gpubroker.Account {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		writeError(w, r, gpubroker.Errorf(gpubroker.EUNAUTHORIZED, "unauthorized", "Sign in to continue."))
		return nil
	}
	a, err := postgres.SessionAccount(r.Context(), s.Pool, c.Value, s.now())
	if err != nil {
		writeError(w, r, err)
		return nil
	}
	return a
}

type tokenRequest struct {
	Token string `json:"token"`
}

// consume spends a token of the given purpose and signs its account in.
func (s *Server) consume(w http.ResponseWriter, r *http.Request, purpose string) {
	var req tokenRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if !s.limit(w, r, "token:ip:"+s.rateNet(r), 30, 10*time.Minute) {
		return
	}
	ctx := r.Context()
	// The activating browser's own session, if any: the provisional one of the checkout that
	// created the account keeps the keys its payer added (ActivateAccount).
	var cookie string
	if c, err := r.Cookie(SessionCookie); err == nil {
		cookie = c.Value
	}
	var acct *gpubroker.Account
	err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		id, err := postgres.ConsumeToken(ctx, tx, req.Token, purpose, s.now())
		if err != nil {
			return err
		}
		// Following an emailed link proves the address: a sign-in link activates too.
		var dropped int
		if acct, dropped, err = postgres.ActivateAccount(ctx, tx, id, cookie, s.now()); err != nil {
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
		writeError(w, r, err)
		return
	}
	if err := s.startSession(w, r, acct.ID); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"account": toAccountJSON(acct)})
}

func (s *Server) handleActivate(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	s.consume(w, r, gpubroker.TokenActivation)
}

func (s *Server) handleLoginVerify(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	s.consume(w, r, gpubroker.TokenLogin)
}

type emailRequest struct {
	Email string `json:"email"`
}

// sendLink emails a fresh activation (pending accounts) or sign-in link. It always answers 202,
// so nobody can learn which emails have accounts.
func (s *Server) sendLink(w http.ResponseWriter, r *http.Request, purpose string) {
	var req emailRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	email := gpubroker.NormalizeEmail(req.Email)
	if !gpubroker.ValidEmail(email) {
		writeError(w, r, &gpubroker.Error{Code: gpubroker.EINVALID, Reason: "invalid_fields", Message: "Enter a valid email address.", Fields: map[string]string{"email": "Enter a valid email address."}})
		return
	}
	if !s.limit(w, r, purpose+":ip:"+s.rateNet(r), 20, time.Hour) || !s.limit(w, r, purpose+":email:"+gpubroker.Mailbox(email), 5, time.Hour) {
		return
	}
	ctx := r.Context()
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
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "sent", "message": "If an account exists for that address, we have emailed it a link."})
}

func (s *Server) handleResend(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	s.sendLink(w, r, gpubroker.TokenActivation)
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	s.sendLink(w, r, gpubroker.TokenLogin)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		if err := postgres.DeleteSession(r.Context(), s.Pool, c.Value); err != nil {
			writeError(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.SecureCookies, SameSite: http.SameSiteLaxMode})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	acct := s.account(w, r)
	if acct == nil {
		return
	}
	pods, err := postgres.ListAccountPods(r.Context(), s.Pool, acct.ID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	receipts, err := s.receipts(r, acct.ID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	views, err := s.podViews(r.Context(), acct, pods)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := map[string]any{"account": toAccountJSON(acct), "pods": views, "receipts": receipts, "pro_active_until": nil}
	// The Pro fee buys PlanFeePeriod: get-started prices without it until then.
	if until, err := postgres.PlanFeePaidUntil(r.Context(), s.Pool, acct.ID, "pro"); err != nil {
		writeError(w, r, err)
		return
	} else if until.After(s.now()) {
		out["pro_active_until"] = until
	}
	writeJSON(w, http.StatusOK, out)
}
