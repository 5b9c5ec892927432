package feedback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Receive parameters. SQS returns at most 10 messages per call, and 20 s is the longest long
// poll: an idle consumer makes three cheap calls a minute instead of spinning.
const (
	MaxMessages = 10
	WaitSeconds = 20
)

// receiveTimeout bounds one ReceiveMessage call. It must outlast the long poll, or every idle
// poll would end as a context error, yet still end a call stuck on a dead connection.
const receiveTimeout = (WaitSeconds + 10) * time.Second

// deleteTimeout bounds deleting a batch. Deletion runs even when the consumer is shutting down:
// the feedback is already committed, and a message not deleted is only delivered and applied
// again.
const deleteTimeout = 10 * time.Second

// Consumer reads SES feedback from an SQS queue and applies it to a Store. A message is deleted
// only after the Store has committed it; a message that cannot be parsed or stored stays in the
// queue, is received again after its visibility timeout, and after the queue's maxReceiveCount
// moves to the dead-letter queue, where ops can inspect and redrive it.
type Consumer struct {
	Client   *sqs.Client
	QueueURL string
	Store    Store
	// Logger receives one record per message that is not handled. Nil discards.
	Logger *slog.Logger
}

// Run polls the queue until ctx is done and then returns nil. It returns an error only when the
// Consumer is not configured. Poll errors are logged and retried with a growing pause (up to a
// minute) so a missing queue or permission does not turn into a tight loop.
func (c *Consumer) Run(ctx context.Context) error {
	if c.Client == nil || c.QueueURL == "" || c.Store == nil {
		return errors.New("feedback consumer needs Client, QueueURL and Store")
	}
	var pause time.Duration
	for ctx.Err() == nil {
		_, err := c.PollOnce(ctx)
		if err == nil {
			pause = 0
			continue
		}
		if ctx.Err() != nil {
			break
		}
		pause = min(max(2*pause, time.Second), time.Minute)
		c.logger().ErrorContext(ctx, "polling SES feedback queue", slog.String("error", err.Error()),
			slog.Duration("retry_in", pause))
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return nil
}

// PollOnce receives one batch (long polling up to 20 s), applies each message's feedback to the
// Store and deletes the messages that were applied or that Parse ignores. It returns how many
// messages it deleted. The error reports a failed receive or delete; messages that could not be
// parsed or stored are only logged, since leaving them in the queue is their handling.
func (c *Consumer) PollOnce(ctx context.Context) (handled int, err error) {
	rctx, cancel := context.WithTimeout(ctx, receiveTimeout)
	out, err := c.Client.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(c.QueueURL),
		MaxNumberOfMessages: MaxMessages,
		WaitTimeSeconds:     WaitSeconds,
		// The receive count tells a log reader how close a failing message is to the DLQ.
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
		},
	})
	cancel()
	if err != nil {
		return 0, fmt.Errorf("error receiving from %s: %w", c.QueueURL, err)
	}

	var done []types.DeleteMessageBatchRequestEntry
	for i, msg := range out.Messages {
		log := c.logger().With(slog.String("sqs_message_id", aws.ToString(msg.MessageId)),
			slog.String("receive_count", msg.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]))
		f, err := Parse([]byte(aws.ToString(msg.Body)))
		switch {
		case errors.Is(err, ErrIgnored):
			log.InfoContext(ctx, "ignoring SES feedback message", slog.String("reason", err.Error()))
		case err != nil:
			// Left in the queue: it will land in the DLQ, where a person can look at it.
			log.WarnContext(ctx, "unparsable SES feedback message left in the queue", slog.String("error", err.Error()))
			continue
		default:
			if err := c.Store.Apply(ctx, *f); err != nil {
				log.ErrorContext(ctx, "storing SES feedback failed; message left in the queue",
					slog.String("feedback_id", f.ID), slog.String("error", err.Error()))
				continue
			}
		}
		done = append(done, types.DeleteMessageBatchRequestEntry{
			Id:            aws.String(strconv.Itoa(i)),
			ReceiptHandle: msg.ReceiptHandle,
		})
	}
	if len(done) == 0 {
		return 0, nil
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
	defer cancel()
	return c.delete(dctx, done)
}

// delete deletes applied messages in one batch (a receive returns at most 10, the batch limit).
// A batch answers 200 even when entries fail, so Failed is checked: an entry that failed on the
// server side is retried once on its own; one that failed on our side (an expired receipt
// handle) cannot succeed, and its message will be received and applied again, harmlessly.
func (c *Consumer) delete(ctx context.Context, entries []types.DeleteMessageBatchRequestEntry) (int, error) {
	out, err := c.Client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{
		QueueUrl: aws.String(c.QueueURL),
		Entries:  entries,
	})
	if err != nil {
		return 0, fmt.Errorf("error deleting %d messages from %s: %w", len(entries), c.QueueURL, err)
	}
	deleted := len(out.Successful)
	handles := make(map[string]*string, len(entries))
	for _, e := range entries {
		handles[aws.ToString(e.Id)] = e.ReceiptHandle
	}
	var errs []error
	for _, f := range out.Failed {
		id := aws.ToString(f.Id)
		if !f.SenderFault {
			_, err := c.Client.DeleteMessage(ctx, &sqs.DeleteMessageInput{
				QueueUrl:      aws.String(c.QueueURL),
				ReceiptHandle: handles[id],
			})
			if err == nil {
				deleted++
				continue
			}
			errs = append(errs, fmt.Errorf("error deleting message %s again after %s: %w", id, aws.ToString(f.Code), err))
			continue
		}
		errs = append(errs, fmt.Errorf("error deleting message %s: %s: %s", id, aws.ToString(f.Code), aws.ToString(f.Message)))
	}
	return deleted, errors.Join(errs...)
}

func (c *Consumer) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}
