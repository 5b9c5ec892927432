package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"gpubroker"
)

// ClassifyError maps a store error to the domain error callers answer with; it is the one
// place that decides what a Postgres failure means:
//   - nil is nil, and a domain error (*gpubroker.Error) is returned as it is;
//   - the database cannot be reached or refuses work for now (connect failures, a dropped
//     connection or one cut mid-answer, a closed pool, deadlines, SQLSTATE class 08, admin or crash shutdown
//     57P01/57P02/57P03, insufficient resources 53xxx): EUNAVAILABLE, so clients retry;
//   - the input cannot be stored or compared (SQLSTATE class 22: invalid text representation,
//     bad encoding such as NUL bytes, untranslatable characters, values out of range):
//     EBADREQUEST, the client's mistake;
//   - pgx.ErrNoRows: ENOTFOUND;
//   - anything else (a syntax error, a violated constraint nobody handled): EINTERNAL, a bug.
//
// The returned error carries no cause: callers log err itself.
func ClassifyError(err error) error {
	if err == nil {
		return nil
	}
	var e *gpubroker.Error
	if errors.As(err, &e) {
		return err
	}
	switch {
	case Unavailable(err):
		return &gpubroker.Error{Code: gpubroker.EUNAVAILABLE, Reason: "unavailable", Message: "We cannot reach our database right now. Please retry shortly."}
	case InvalidInput(err):
		return &gpubroker.Error{Code: gpubroker.EBADREQUEST, Reason: "bad_request", Message: "The request contains characters or values we cannot accept."}
	case errors.Is(err, pgx.ErrNoRows):
		return gpubroker.Errorf(gpubroker.ENOTFOUND, "not_found", "Not found.")
	}
	return &gpubroker.Error{Code: gpubroker.EINTERNAL, Reason: "internal", Message: "Something went wrong on our side. Please try again."}
}

// Unavailable reports whether err says the database is unreachable or refusing work for
// now, rather than that the statement or its input was wrong.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		c := pgErr.Code
		return strings.HasPrefix(c, "08") || strings.HasPrefix(c, "53") ||
			c == "57P01" || c == "57P02" || c == "57P03"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	// A server that crashes mid-answer ends the socket inside a message: io.ErrUnexpectedEOF.
	return errors.As(err, &connectErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, puddle.ErrClosedPool) ||
		errors.As(err, &netErr)
}

// InvalidInput reports whether Postgres refused a value we sent (SQLSTATE class 22, data
// exception): a malformed uuid, a NUL byte or invalid UTF-8 in text, a number out of range.
func InvalidInput(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22")
}
