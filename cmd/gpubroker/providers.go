package main

import (
	"context"
	"log/slog"

	"gpubroker/gpu"
	"gpubroker/gpu/lambda"
	"gpubroker/gpu/runpod"
	"gpubroker/jobs"
)

// realProviders returns the GPU providers enabled by their API keys.
func (m *Main) realProviders(log *slog.Logger) []gpu.Provider {
	var ps []gpu.Provider
	if key := m.Config.LambdaAPIKey; key != "" {
		ps = append(ps, lambda.New(lambda.Config{APIKey: key, SSHKeyName: m.Config.LambdaSSHKeyName}))
		log.Info("gpu provider enabled", "provider", "lambda")
	}
	if key := m.Config.RunPodAPIKey; key != "" {
		ps = append(ps, runpod.New(runpod.Config{APIKey: key}))
		log.Info("gpu provider enabled", "provider", "runpod")
	}
	return ps
}

// aws wires SES, SQS and S3 when configured.
func (m *Main) aws(ctx context.Context, d *jobs.Deps) error {
	return nil
}
