// Command chaos runs GPU Broker's production processes under faults and checks that no money
// or pod was lost (make chaos; see package cmd/chaos/internal/chaos). It prints progress, the violations
// it found, and one line:
//
//	chaos: customers=50 kills=… pg_restarts=1 faults=… money_faults=<struck>/<armed> simulated_hours=… redeliveries=… ops_retries=… violations=0 …
//
// and exits 1 when there was any violation (the run's logs and cluster are then kept).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"gpubroker/cmd/chaos/internal/chaos"
)

func main() {
	var o chaos.Options
	flag.StringVar(&o.Gpubroker, "gpubroker", "bin/gpubroker", "the gpubroker binary to run (make build-prod)")
	flag.IntVar(&o.Customers, "customers", chaos.Defaults.Customers, "customers driven through the product")
	flag.IntVar(&o.Concurrency, "concurrency", chaos.Defaults.Concurrency, "customers at a time")
	flag.IntVar(&o.Workers, "workers", chaos.Defaults.Workers, "gpubroker worker processes")
	flag.DurationVar(&o.KillEvery, "kill-every", chaos.Defaults.KillEvery, "mean time between kill -9s of a worker")
	flag.Uint64Var(&o.Seed, "seed", 0, "randomness (0: random; printed, so a run can be repeated)")
	flag.DurationVar(&o.Quiet, "quiet", chaos.Defaults.Quiet, "how long to wait for quiet after the last customer")
	flag.BoolVar(&o.Keep, "keep", false, "keep the run's directory (logs, cluster) even when it passes")
	flag.DurationVar(&o.RentalHour, "rental-hour", chaos.Defaults.RentalHour, "how long a rented hour lasts in the run (RENTAL_HOUR of the processes)")
	flag.Parse()
	o.Log = os.Stderr
	if _, err := os.Stat(o.Gpubroker); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %s not found (make build-prod)\n", o.Gpubroker)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := chaos.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	for _, v := range res.Violations {
		fmt.Println("violation:", v)
	}
	fmt.Println("chaos: money faults struck/armed by path and kind:", res.MoneyKinds)
	fmt.Println(res.Line())
	if len(res.Violations) > 0 {
		fmt.Fprintln(os.Stderr, "chaos: logs and cluster kept in", res.Dir)
		os.Exit(1)
	}
}
