// Package feedback turns SES bounce and complaint notifications into Feedback values and feeds them
// to a Store. SES publishes them (configuration-set event destination) to an SNS topic that
// delivers to an SQS queue; Consumer reads that queue. Addresses that bounce permanently or
// complain must stop receiving mail: sending to them anyway hurts the account's reputation and,
// past AWS's thresholds, gets sending paused for everyone.
package feedback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"gpubroker"
)

// Kinds of feedback and bounce types: the domain's (gpubroker.EmailFeedback), named here too.
const (
	KindBounce         = gpubroker.FeedbackBounce
	KindComplaint      = gpubroker.FeedbackComplaint
	BouncePermanent    = gpubroker.BouncePermanent
	BounceTransient    = gpubroker.BounceTransient
	BounceUndetermined = gpubroker.BounceUndetermined
)

// ErrIgnored is returned by Parse for a well-formed SES or SNS message that is not a bounce or a
// complaint (a delivery event, an SNS subscription confirmation): there is nothing to record and
// nothing to retry, so Consumer deletes it.
var ErrIgnored = errors.New("not a bounce or complaint")

// Feedback is one bounce or complaint about one sent message (gpubroker.EmailFeedback).
type Feedback = gpubroker.EmailFeedback

// Store records feedback. Implementations must be idempotent: SQS delivers at least once, so the
// same Feedback may be applied again after a crash between Apply and the message's deletion.
type Store interface {
	// Apply records f in one transaction, deduplicated by f.ID and recipient: for a complaint
	// or a permanent bounce (f.Suppresses()) each recipient is added to the suppression list, so
	// no more email is sent to it; a transient or undetermined bounce is only recorded. A nil
	// error means it is committed and the SQS message may be deleted.
	Apply(ctx context.Context, f Feedback) error
}

// envelope is the union of the shapes a queue message may have. One decode tells them apart:
//   - SNS without raw delivery: {"Type":"Notification","Message":"<SES JSON as a string>"};
//   - an EventBridge event: {"source":"aws.ses","detail-type":"Email Bounced","detail":{…}};
//   - SES event publishing (configuration sets): {"eventType":"Bounce","bounce":{…},"mail":{…}};
//   - SES identity notifications (no configuration set): the same with "notificationType".
type envelope struct {
	Type    string `json:"Type"`
	Message string `json:"Message"`

	Source string          `json:"source"`
	Detail json.RawMessage `json:"detail"`

	EventType        string `json:"eventType"`
	NotificationType string `json:"notificationType"`
	Bounce           *struct {
		BounceType        string      `json:"bounceType"`
		BouncedRecipients []recipient `json:"bouncedRecipients"`
		FeedbackID        string      `json:"feedbackId"`
		Timestamp         string      `json:"timestamp"`
	} `json:"bounce"`
	Complaint *struct {
		ComplainedRecipients []recipient `json:"complainedRecipients"`
		FeedbackID           string      `json:"feedbackId"`
		Timestamp            string      `json:"timestamp"`
	} `json:"complaint"`
	Mail struct {
		MessageID string `json:"messageId"`
		Timestamp string `json:"timestamp"`
	} `json:"mail"`
}

type recipient struct {
	EmailAddress string `json:"emailAddress"`
}

// Parse reads one queue message body: a raw SES event or notification, the same wrapped in an
// SNS envelope, or an EventBridge SES event. It returns ErrIgnored (wrapped) for other SES or
// SNS messages and another error for anything it does not understand.
//
// SNS signatures are not checked: the queue policy only lets the feedback topic write to the
// queue, and IAM, not the message, is what authenticates SQS.
func Parse(body []byte) (*Feedback, error) {
	return parse(body, 0)
}

func parse(body []byte, depth int) (*Feedback, error) {
	if depth > 1 {
		return nil, errors.New("error parsing feedback: envelope inside envelope")
	}
	var e envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("error parsing feedback: %w", err)
	}
	switch {
	case e.Type != "":
		if e.Type != "Notification" {
			return nil, fmt.Errorf("SNS %s: %w", e.Type, ErrIgnored)
		}
		return parse([]byte(e.Message), depth+1)
	case e.Source == "aws.ses" && len(e.Detail) > 0:
		return parse(e.Detail, depth+1)
	}

	typ := e.EventType
	if typ == "" {
		typ = e.NotificationType
	}
	f := &Feedback{MessageID: e.Mail.MessageID}
	var recipients []recipient
	var at string
	switch typ {
	case "Bounce":
		if e.Bounce == nil {
			return nil, errors.New("error parsing feedback: Bounce without a bounce object")
		}
		f.Kind, f.BounceType, f.ID = KindBounce, e.Bounce.BounceType, e.Bounce.FeedbackID
		recipients, at = e.Bounce.BouncedRecipients, e.Bounce.Timestamp
		if f.BounceType == "" {
			f.BounceType = BounceUndetermined
		}
	case "Complaint":
		if e.Complaint == nil {
			return nil, errors.New("error parsing feedback: Complaint without a complaint object")
		}
		f.Kind, f.ID = KindComplaint, e.Complaint.FeedbackID
		recipients, at = e.Complaint.ComplainedRecipients, e.Complaint.Timestamp
	case "":
		return nil, errors.New("error parsing feedback: neither an SES event nor an SNS notification")
	default:
		return nil, fmt.Errorf("SES %s: %w", typ, ErrIgnored)
	}

	if f.ID == "" {
		// Without it the Store cannot deduplicate; such a message is broken, not ignorable.
		return nil, fmt.Errorf("error parsing feedback: %s without feedbackId", typ)
	}
	seen := map[string]bool{}
	for _, r := range recipients {
		addr := address(r.EmailAddress)
		if addr != "" && !seen[addr] {
			seen[addr] = true
			f.Recipients = append(f.Recipients, addr)
		}
	}
	if len(f.Recipients) == 0 {
		return nil, fmt.Errorf("error parsing feedback: %s %s without recipients", typ, f.ID)
	}
	for _, ts := range []string{at, e.Mail.Timestamp} {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			f.At = t.UTC()
			break
		}
	}
	return f, nil
}

// address extracts the bare address from "Name <a@b>" forms, which some reporting MTAs use, and
// normalizes it.
func address(s string) string {
	if strings.ContainsRune(s, '<') {
		if a, err := mail.ParseAddress(s); err == nil {
			s = a.Address
		}
	}
	return gpubroker.NormalizeEmail(s)
}
