// Package sqsfake is a local SQS endpoint (the JSON protocol) the real SDK client is pointed at,
// beside the feedback consumer it feeds.
package sqsfake

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// ReceiveRequest is the part of a ReceiveMessage request the tests check.
type ReceiveRequest struct {
	QueueUrl                    string
	MaxNumberOfMessages         int
	WaitTimeSeconds             int
	MessageSystemAttributeNames []string
}

type message struct {
	id, receipt, body string
	inFlight          bool
}

// SQS speaks the AWS JSON 1.0 protocol SQS has used since November 2023, as SDK v1.52
// serializes it (smithy-go awsjson): POST / with X-Amz-Target "AmazonSQS.<Operation>" and
// Content-Type application/x-amz-json-1.0, a JSON body with the operation's member names, and
// errors as a JSON body with "__type". It serves the three operations the feedback consumer
// uses. Received messages stay in flight until deleted, which is all the visibility timeout the
// tests need. The zero value accepts every queue URL.
type SQS struct {
	// QueueURL, when set, is the only queue: requests naming another get QueueDoesNotExist.
	QueueURL string
	// FailBatch makes DeleteMessageBatch report these receipt handles as failed, with the
	// given sender fault; FailSingle makes DeleteMessage fail for them too.
	FailBatch, FailSingle map[string]bool
	// OnDelete is called with a message's id when it is deleted (under the fake's lock).
	OnDelete func(id string)
	// Unexpected is called for a request the fake does not speak (tests pass t.Errorf).
	Unexpected func(format string, args ...any)

	mu       sync.Mutex
	next     int
	messages []*message
	receives []ReceiveRequest
}

// Add queues messages; their ids are m1, m2… and their receipt handles rh-1, rh-2….
func (f *SQS) Add(bodies ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range bodies {
		f.next++
		f.messages = append(f.messages, &message{id: fmt.Sprintf("m%d", f.next), receipt: fmt.Sprintf("rh-%d", f.next), body: b})
	}
}

// Remaining returns the ids of the messages not deleted yet.
func (f *SQS) Remaining() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, m := range f.messages {
		ids = append(ids, m.id)
	}
	return ids
}

// RemainingBodies returns the bodies of the messages not deleted yet.
func (f *SQS) RemainingBodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, m := range f.messages {
		out = append(out, m.body)
	}
	return out
}

// Receives returns every ReceiveMessage request so far.
func (f *SQS) Receives() []ReceiveRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ReceiveRequest(nil), f.receives...)
}

func (f *SQS) unexpected(format string, args ...any) {
	if f.Unexpected != nil {
		f.Unexpected(format, args...)
	}
}

// ServeHTTP implements http.Handler.
func (f *SQS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/" ||
		r.Header.Get("Content-Type") != "application/x-amz-json-1.0" {
		f.unexpected("unexpected request %s %s (Content-Type %q)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		sqsError(w, http.StatusBadRequest, "InvalidAction", "not AWS JSON 1.0")
		return
	}
	target := r.Header.Get("X-Amz-Target")
	if target == "AmazonSQS.ReceiveMessage" {
		f.receive(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch target {
	case "AmazonSQS.DeleteMessageBatch":
		var req struct {
			QueueUrl string
			Entries  []struct{ Id, ReceiptHandle string }
		}
		if !decode(w, r, &req) || !f.checkQueue(w, req.QueueUrl) {
			return
		}
		type failed struct {
			Id, Code, Message string
			SenderFault       bool
		}
		res := struct {
			Successful []map[string]string
			Failed     []failed
		}{Successful: []map[string]string{}, Failed: []failed{}}
		for _, e := range req.Entries {
			if sender, ok := f.FailBatch[e.ReceiptHandle]; ok {
				res.Failed = append(res.Failed, failed{Id: e.Id, Code: "InternalError", Message: "scripted", SenderFault: sender})
				continue
			}
			if f.deleteLocked(e.ReceiptHandle) {
				res.Successful = append(res.Successful, map[string]string{"Id": e.Id})
			} else {
				res.Failed = append(res.Failed, failed{Id: e.Id, Code: "ReceiptHandleIsInvalid", Message: "unknown handle", SenderFault: true})
			}
		}
		writeSQS(w, res)
	case "AmazonSQS.DeleteMessage":
		var req struct{ QueueUrl, ReceiptHandle string }
		if !decode(w, r, &req) || !f.checkQueue(w, req.QueueUrl) {
			return
		}
		if f.FailSingle[req.ReceiptHandle] || !f.deleteLocked(req.ReceiptHandle) {
			sqsError(w, http.StatusBadRequest, "ReceiptHandleIsInvalid", "cannot delete "+req.ReceiptHandle)
			return
		}
		writeSQS(w, struct{}{})
	default:
		f.unexpected("unexpected X-Amz-Target %q", target)
		sqsError(w, http.StatusBadRequest, "InvalidAction", target)
	}
}

func (f *SQS) receive(w http.ResponseWriter, r *http.Request) {
	var req ReceiveRequest
	if !decode(w, r, &req) {
		return
	}
	f.mu.Lock()
	if !f.checkQueue(w, req.QueueUrl) {
		f.mu.Unlock()
		return
	}
	f.receives = append(f.receives, req)
	type msg struct {
		MessageId, ReceiptHandle, MD5OfBody, Body string
		Attributes                                map[string]string
	}
	out := struct{ Messages []msg }{Messages: []msg{}}
	for _, m := range f.messages {
		if m.inFlight || len(out.Messages) == max(req.MaxNumberOfMessages, 1) {
			continue
		}
		m.inFlight = true
		// The SDK checks MD5OfBody against the body and fails the call on a mismatch.
		sum := md5.Sum([]byte(m.body))
		out.Messages = append(out.Messages, msg{
			MessageId: m.id, ReceiptHandle: m.receipt, MD5OfBody: hex.EncodeToString(sum[:]), Body: m.body,
			Attributes: map[string]string{"ApproximateReceiveCount": "1"},
		})
	}
	f.mu.Unlock()
	if len(out.Messages) == 0 && req.WaitTimeSeconds > 0 {
		// A short stand-in for the long poll, so a consumer's loop does not spin.
		select {
		case <-r.Context().Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	writeSQS(w, out)
}

func (f *SQS) deleteLocked(receipt string) bool {
	for i, m := range f.messages {
		if m.receipt == receipt {
			f.messages = append(f.messages[:i], f.messages[i+1:]...)
			if f.OnDelete != nil {
				f.OnDelete(m.id)
			}
			return true
		}
	}
	return false
}

func (f *SQS) checkQueue(w http.ResponseWriter, url string) bool {
	if f.QueueURL != "" && url != f.QueueURL {
		sqsError(w, http.StatusBadRequest, "QueueDoesNotExist", "The specified queue does not exist.")
		return false
	}
	return true
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		sqsError(w, http.StatusBadRequest, "InvalidParameterValue", err.Error())
		return false
	}
	return true
}

func writeSQS(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_ = json.NewEncoder(w).Encode(v)
}

func sqsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + code, "message": msg})
}
