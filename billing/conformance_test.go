package billing_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"gpubroker/billing"
	"gpubroker/billing/paymentstest"
	"gpubroker/billing/stripesim"
)

// standIn is billing.Client on a fresh Stripe stand-in, mounted as the dev server mounts it,
// with every answer recorded by rec (nil: not recorded).
func standIn(t *testing.T, rec *paymentstest.Recorder) paymentstest.Subject {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	sim := stripesim.New(stripesim.Config{PublicURL: srv.URL, Logger: slog.New(slog.DiscardHandler), SweepInterval: -1})
	t.Cleanup(sim.Close)
	mux.Handle(stripesim.DefaultPrefix+"/", sim)
	cfg := billing.Config{SecretKey: testKey, APIBase: srv.URL + stripesim.DefaultPrefix}
	if rec != nil {
		cfg.HTTPClient = rec.Client()
	}
	return paymentstest.Subject{
		Payments: billing.New(cfg),
		Pay: func(ctx context.Context, sessionID string) error {
			_, err := sim.Pay(ctx, sessionID, stripesim.CardSucceeds)
			return err
		},
		Fail500: func(method, path string) {
			sim.InjectFault(stripesim.Fault{Method: method, Path: path, Mode: stripesim.FailBefore, Times: 1})
		},
	}
}

// TestConformanceShapes runs the shape checks against stripe-mock (Stripe's OpenAPI fixtures:
// request validation and answer shapes, no state) and against the stand-in, then compares the
// stand-in's answers with stripe-mock's field by field.
func TestConformanceShapes(t *testing.T) {
	t.Parallel()
	base := startStripeMock(t)
	mockRec, simRec := paymentstest.NewRecorder(), paymentstest.NewRecorder()
	mock := func(t *testing.T) paymentstest.Subject {
		return paymentstest.Subject{Payments: billing.New(billing.Config{SecretKey: testKey, APIBase: base, HTTPClient: mockRec.Client()})}
	}
	// t.Run returns once its parallel subtests are done, so both recorders are complete below.
	t.Run("stripe-mock", func(t *testing.T) { paymentstest.Shapes(t, paymentstest.Harness{New: mock}) })
	t.Run("stand-in", func(t *testing.T) {
		paymentstest.Shapes(t, paymentstest.Harness{New: func(t *testing.T) paymentstest.Subject { return standIn(t, simRec) }})
	})
	t.Run("stand-in answers as stripe-mock", func(t *testing.T) {
		// Optional in Stripe's spec (payment_method_details_card), absent from the fixture:
		// the hold's deadline, which the app reads.
		paymentstest.SameFields(t, simRec, mockRec, "latest_charge.payment_method_details.card.capture_before")
	})
}

// TestConformanceBehaviour runs the behaviour checks against the stand-in (stripe-mock keeps
// no state, so it cannot show any).
func TestConformanceBehaviour(t *testing.T) {
	t.Parallel()
	paymentstest.Behaviour(t, paymentstest.Harness{New: func(t *testing.T) paymentstest.Subject { return standIn(t, nil) }})
}
