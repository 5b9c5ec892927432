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

type contactRequest struct {
	Name    string `json:"name"`
	Email   string `json:"email"`
	Company string `json:"company"`
	Message string `json:"message"`
}

// handleContact stores a sales enquiry and emails it to SALES_EMAIL.
func (s *Server) handleContact(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	var req contactRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	req.Email = gpubroker.NormalizeEmail(req.Email)
	fields := map[string]string{}
	if req.Name == "" || len(req.Name) > 100 {
		fields["name"] = "Enter your name (at most 100 characters)."
	}
	if !gpubroker.ValidEmail(req.Email) {
		fields["email"] = "Enter a valid email address."
	}
	if len(req.Company) > 200 {
		fields["company"] = "Use at most 200 characters."
	}
	if len(req.Message) < 10 || len(req.Message) > 5000 {
		fields["message"] = "Tell us a little more (10 to 5000 characters)."
	}
	if len(fields) > 0 {
		writeError(w, r, &gpubroker.Error{Code: gpubroker.EINVALID, Reason: "invalid_fields", Message: "Some fields need attention.", Fields: fields})
		return
	}
	if !s.limit(w, r, "contact:ip:"+s.rateNet(r), 5, time.Hour) {
		return
	}
	ctx := r.Context()
	err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		if err := postgres.InsertContactMessage(ctx, tx, req.Name, req.Email, req.Company, req.Message); err != nil {
			return err
		}
		return lifecycle.QueueEmailTx(ctx, tx, s.Jobs, gpubroker.MailContact, s.SalesEmail, "", mail.Data{
			Name: "Sales", FromName: req.Name, FromEmail: req.Email, Company: req.Company, Message: req.Message, Link: s.PublicURL + "/contact/",
		})
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "received", "message": "Thanks! Our sales team will reply within one business day."})
}
