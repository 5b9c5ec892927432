package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"gpubroker/jobs"
)

// p50 returns the median of durations, in milliseconds.
func p50(ds []time.Duration) float64 {
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Microseconds()) / 1000
}

// BenchmarkPaymentToAccount measures, per paid checkout, the time from the card being
// authorized on the Stripe stand-in to the account row and to the activation email row, with
// River's production fetch timings. Run with -benchtime 100x for p50 over 100 runs.
func BenchmarkPaymentToAccount(b *testing.B) {
	e := newEnv(b, envOpts{productionRiver: true})
	ctx := context.Background()
	var toAccount, toEmail []time.Duration
	for i := 0; b.Loop(); i++ {
		email := fmt.Sprintf("bench%d@example.com", i)
		_, sid := e.checkout(newBrowser(), email)
		start := time.Now()
		if _, err := e.m.StripeSim.Pay(ctx, sid, "4242424242424242"); err != nil {
			b.Fatal(err)
		}
		var acct, mail time.Time
		e.eventually("email", func() bool {
			return e.m.Pool.QueryRow(ctx, `SELECT a.created_at, m.created_at FROM accounts a JOIN emails m ON m.to_email = a.email WHERE a.email = $1`, email).Scan(&acct, &mail) == nil
		})
		toAccount = append(toAccount, acct.Sub(start))
		toEmail = append(toEmail, mail.Sub(start))
	}
	b.ReportMetric(p50(toAccount), "ms-to-account-p50")
	b.ReportMetric(p50(toEmail), "ms-to-email-p50")
}

// BenchmarkDeployToProvision measures, per Deploy click, the time to the capture being done
// and to the provision job starting (the simulator's boot delay is not part of it).
func BenchmarkDeployToProvision(b *testing.B) {
	// A long poll interval leaves the provision job's first attempt time in place.
	e := newEnv(b, envOpts{productionRiver: true, tune: func(d *jobs.Deps) { d.PollInterval = time.Hour }})
	ctx := context.Background()
	var toCapture, toProvision []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		c, podID := e.signUp(fmt.Sprintf("deploy%d@example.com", i))
		b.StartTimer()
		start := time.Now()
		if res := e.api(c).Deploy(podID); res.Code != http.StatusAccepted {
			b.Fatal(res)
		}
		var captured, started time.Time
		e.eventually("provision started", func() bool {
			return e.m.Pool.QueryRow(ctx, `SELECT p.captured_at, j.attempted_at FROM pods p JOIN river_job j ON j.kind = 'provision' AND j.args->>'pod_id' = p.id::text
				WHERE p.id = $1 AND j.attempted_at IS NOT NULL`, podID).Scan(&captured, &started) == nil
		})
		toCapture = append(toCapture, captured.Sub(start))
		toProvision = append(toProvision, started.Sub(start))
	}
	b.ReportMetric(p50(toCapture), "ms-to-capture-p50")
	b.ReportMetric(p50(toProvision), "ms-to-provision-start-p50")
}
