package gpubroker

import (
	"context"
	"errors"
)

// Email kinds. Each has a template in package mail.
const (
	MailActivation   = "activation"
	MailLogin        = "login"
	MailPodReady     = "pod_ready"
	MailPodEnded     = "pod_terminated"
	MailHoldReleased = "hold_released"
	MailRefunded     = "refunded"
	MailPodFailed    = "pod_failed"
	MailPodEnding    = "pod_ending" // an hour before a pod longer than an hour ends
	MailContact      = "contact"
)

// Message is a rendered email, as stored in the outbox and handed to a Sender.
type Message struct {
	ID      int64
	To      string
	Kind    string
	Subject string
	Text    string
	HTML    string
}

// ErrPermanent is wrapped by a Sender when the message can never be delivered (rejected,
// bad address): the outbox row records it and the job does not retry.
var ErrPermanent = errors.New("permanent email failure")

// Sender delivers a rendered email and returns the provider's message id.
type Sender interface {
	Send(ctx context.Context, m Message) (messageID string, err error)
}
