//go:build !nostandins

package main

import (
	"log/slog"

	"gpubroker/billing/stripesim"
)

// stripeStandIn is the Stripe stand-in that dev mounts when STRIPE_SECRET_KEY is unset.
// Production images are built with -tags nostandins, which leaves it out of the binary.
type stripeStandIn = stripesim.Server

// devModeBuilt: this build has the dev mode (everything in one process with the stand-ins).
const devModeBuilt = true

// stripeStandInPrefix is where dev mounts it.
const stripeStandInPrefix = stripesim.DefaultPrefix

func newStripeStandIn(publicURL, webhookURL, webhookSecret string, log *slog.Logger) (*stripeStandIn, error) {
	return stripesim.New(stripesim.Config{
		Prefix: stripeStandInPrefix, PublicURL: publicURL, WebhookURL: webhookURL, WebhookSecret: webhookSecret, Logger: log,
	}), nil
}
