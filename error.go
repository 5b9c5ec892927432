package gpubroker

import (
	"errors"
	"fmt"
)

// Error codes: the category of a failure, mapped to an HTTP status in one place (api).
const (
	EINVALID      = "invalid"      // bad input: 422 (or 400 for malformed requests)
	EBADREQUEST   = "bad_request"  // malformed request: 400
	EUNAUTHORIZED = "unauthorized" // no valid session: 401
	EFORBIDDEN    = "forbidden"    // authenticated but not allowed: 403
	ENOTFOUND     = "not_found"    // 404
	ECONFLICT     = "conflict"     // state does not allow it: 409
	EGONE         = "gone"         // expired or used: 410
	ETOOLARGE     = "too_large"    // 413
	ERATELIMIT    = "rate_limited" // 429
	EUNAVAILABLE  = "unavailable"  // a dependency is down: 503
	EINTERNAL     = "internal"     // a bug: 500
)

// Error is a domain error. Code is the category; Reason is the machine code the API returns in
// its "error" field (e.g. "trial_used", "token_expired"); Message is for humans.
type Error struct {
	Code    string
	Reason  string
	Message string
	Fields  map[string]string
}

func (e *Error) Error() string {
	return fmt.Sprintf("gpubroker error: code=%s reason=%s message=%s", e.Code, e.Reason, e.Message)
}

// Errorf returns an Error with the given code and reason and a formatted message.
func Errorf(code, reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is or wraps an *Error, and EINTERNAL otherwise.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return EINTERNAL
}

// ErrorReason returns the machine code of err, or "internal".
func ErrorReason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		if e.Reason != "" {
			return e.Reason
		}
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of err if it is or wraps an *Error (what a customer may
// read), and a generic one otherwise.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Something went wrong on our side."
}
