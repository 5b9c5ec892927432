package api

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/mail"
	"gpubroker/postgres"
)

// contact stores a sales enquiry and emails it to SALES_EMAIL.
func (s *Server) contact(ctx context.Context, c *call, req *ContactRequest) (*Status, error) {
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
		return nil, &gpubroker.Error{Code: gpubroker.EINVALID, Reason: "invalid_fields", Message: "Some fields need attention.", Fields: fields}
	}
	if err := s.allow(c, "contact:ip:"+s.rateNet(c.r), 5, time.Hour); err != nil {
		return nil, err
	}
	err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		if err := postgres.InsertContactMessage(ctx, tx, req.Name, req.Email, req.Company, req.Message); err != nil {
			return err
		}
		return lifecycle.QueueEmailTx(ctx, tx, s.Jobs, gpubroker.MailContact, s.SalesEmail, "", mail.Data{
			Name: "Sales", FromName: req.Name, FromEmail: req.Email, Company: req.Company, Message: req.Message, Link: s.PublicURL + "/contact/",
		})
	})
	if err != nil {
		return nil, err
	}
	return &Status{Status: "received", Message: "Thanks! Our sales team will reply within one business day."}, nil
}
