//go:build nostandins

package main

import (
	"errors"
	"log/slog"
	"net/http"
)

// stripeStandIn is absent from a production build (-tags nostandins): dev needs a real key.
type stripeStandIn struct{ http.Handler }

// Close implements the stand-in's Close.
func (*stripeStandIn) Close() {}

const stripeStandInPrefix = "/dev/stripe"

func newStripeStandIn(string, string, string, *slog.Logger) (*stripeStandIn, error) {
	return nil, errors.New("STRIPE_SECRET_KEY: this binary was built without the Stripe stand-in (-tags nostandins); set a Stripe test key")
}
