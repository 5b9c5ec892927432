// Command scale is make scale: the production processes on a database seeded with SCALE times
// a year of a busy service, every customer and ops route, the ops collector's queries and the
// periodic jobs timed, and the statements over 100 ms listed with their plans (package
// cmd/scale/internal/scale). It exits 1 when a measurement misses the bars (-gate).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gpubroker/cmd/scale/internal/scale"
)

func main() {
	var o scale.Options
	gate := flag.Bool("gate", false, "exit 1 when a route, a collector query or a statement of ours misses its bar")
	flag.StringVar(&o.Gpubroker, "gpubroker", "bin/gpubroker", "the gpubroker binary to run (make build-prod)")
	flag.Float64Var(&o.Scale, "scale", 1, "multiple of a year of a busy service (100k accounts, 500k orders, 3M audit events …)")
	flag.IntVar(&o.Requests, "n", 9, "requests per route (and runs per collector query)")
	flag.DurationVar(&o.JobWindow, "jobs", 40*time.Second, "how long the worker runs its periodic jobs (pod_health, reconcile, retention)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the cluster and its logs (its directory is printed at the end; measure it again with -reuse)")
	flag.StringVar(&o.Reuse, "reuse", "", "measure the cluster an earlier -keep run kept in this directory again: started, migrated up, not seeded again (it stays kept)")
	flag.Parse()
	o.Out, o.Log = os.Stdout, os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := scale.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
	if bad := res.Gate(); len(bad) > 0 {
		fmt.Printf("\n%d over their bar:\n", len(bad))
		for _, b := range bad {
			fmt.Println("  " + b)
		}
		if *gate {
			os.Exit(1)
		}
	}
}
