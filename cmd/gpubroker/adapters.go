package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"gpubroker/feedback"
	"gpubroker/gpu"
	"gpubroker/gpu/lambda"
	"gpubroker/gpu/runpod"
	"gpubroker/images"
	"gpubroker/jobs"
	"gpubroker/mail/ses"
	"gpubroker/offers/s3pub"
	"gpubroker/postgres"
)

// realProviders returns the GPU providers enabled by their API keys.
func (m *Main) realProviders(log *slog.Logger) []gpu.Provider {
	var ps []gpu.Provider
	if key := m.Config.LambdaAPIKey; key != "" {
		ps = append(ps, lambda.New(lambda.Config{APIKey: key, SSHKeyName: m.Config.LambdaSSHKeyName}))
		log.Info("gpu provider enabled", "provider", "lambda")
	}
	if key := m.Config.RunPodAPIKey; key != "" {
		ps = append(ps, runpod.New(runpod.Config{APIKey: key, BaseURL: m.Config.RunPodAPIBase, ProxyURL: m.Config.RunPodProxyURL,
			BootstrapURL: images.StartScriptURL(m.Config.PublicURL)}))
		log.Info("gpu provider enabled", "provider", "runpod", "api_base", m.Config.RunPodAPIBase)
	}
	return ps
}

// aws wires SES (email), SQS (SES feedback) and S3 (offers.json) when configured. The SDK's
// default chain reads credentials, AWS_REGION and AWS_ENDPOINT_URL_<SERVICE>, so local
// endpoints work without code of ours.
func (m *Main) aws(ctx context.Context, d *jobs.Deps) error {
	cfg, log := m.Config, m.Logger
	if cfg.SESFrom == "" && cfg.SQSFeedbackQueueURL == "" && cfg.OffersBucket == "" {
		return nil
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("AWS_REGION: error loading AWS configuration: %w", err)
	}
	if cfg.SESFrom != "" {
		sender := ses.New(sesv2.NewFromConfig(awsCfg), ses.Options{From: cfg.SESFrom, ConfigurationSet: cfg.SESConfigurationSet, Logger: log})
		if m.Mode != "api" {
			// In the background: SES slow or out of reach must not hold up the worker's start
			// (every job waits for it). Until the quota is read it sends at 1 email/s.
			m.wg.Go(func() {
				initCtx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				if err := sender.Init(initCtx); err != nil {
					log.Warn("could not read the SES sending quota; sending at 1 email/s", "error", err)
				}
			})
		}
		d.Sender = sender
		log.Info("email is sent through SES", "from", cfg.SESFrom, "configuration_set", cfg.SESConfigurationSet, "max_rate", sender.Rate())
	}
	if cfg.OffersBucket != "" {
		client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
			// Local S3 endpoints (gofakes3, MinIO) do not serve bucket subdomains.
			o.UsePathStyle = os.Getenv("AWS_ENDPOINT_URL_S3") != ""
		})
		d.Publisher = s3pub.New(client, cfg.OffersBucket, s3pub.Options{})
		log.Info("offers.json is published to S3", "bucket", cfg.OffersBucket)
	}
	if cfg.SQSFeedbackQueueURL != "" && m.Mode != "api" {
		c := &feedback.Consumer{Client: sqs.NewFromConfig(awsCfg), QueueURL: cfg.SQSFeedbackQueueURL,
			Store: &postgres.FeedbackStore{Pool: m.Pool}, Logger: log.With("component", "feedback")}
		m.wg.Go(func() {
			if err := c.Run(ctx); err != nil {
				log.Error("SES feedback consumer stopped", "error", err)
			}
		})
		log.Info("SES feedback is consumed from SQS", "queue", cfg.SQSFeedbackQueueURL)
	}
	return nil
}
