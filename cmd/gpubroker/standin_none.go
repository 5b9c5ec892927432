//go:build nostandins

package main

import (
	"errors"
	"log/slog"
	"net/http"
)

// devModeBuilt: a production build (-tags nostandins) has no dev mode at all. dev serves every
// email at /dev/mail and the GPU stand-in at /dev/gpu/; the image must not be able to.
const devModeBuilt = false

// stripeStandIn is absent from a production build (-tags nostandins), and so is dev, its only
// user.
type stripeStandIn struct{ http.Handler }

// Close implements the stand-in's Close.
func (*stripeStandIn) Close() {}

const stripeStandInPrefix = "/dev/stripe"

func newStripeStandIn(string, string, string, *slog.Logger) (*stripeStandIn, error) {
	return nil, errors.New("this binary was built without the Stripe stand-in (-tags nostandins)")
}
