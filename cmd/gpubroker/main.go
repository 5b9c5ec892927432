// Command gpubroker is GPU Broker's one binary:
//
//	gpubroker dev      everything in one process with local stand-ins, on loopback (make dev; not in
//	                   the production build, -tags nostandins)
//	gpubroker api      the HTTP API, the ops pages and River UI (stateless, scales horizontally)
//	gpubroker worker   the River workers, periodic jobs and SES feedback consumer
//	gpubroker migrate  apply database migrations (idempotent)
//	gpubroker env      list the configuration variables and their defaults
//
// Configuration comes from the environment (see the README). This file only wires.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"gpubroker/config"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	mode := os.Args[1]
	switch mode {
	case "env":
		for _, v := range config.Vars {
			fmt.Printf("%s=%s\t# %s\n", v.Name, v.Default, v.Help)
		}
		return
	case "dev", "api", "worker", "migrate":
	default:
		usage()
		os.Exit(2)
	}
	cfg, err := configure(mode, os.Getenv)
	if errors.Is(err, errNoDevMode) {
		fmt.Fprintf(os.Stderr, "gpubroker: %v\n", err)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gpubroker: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	m := &Main{Mode: mode, Config: cfg, Logger: logger}
	if err := m.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("gpubroker stopped with an error", "mode", mode, "error", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gpubroker dev|api|worker|migrate|env")
}

// errNoDevMode refuses dev in the production build.
var errNoDevMode = errors.New("dev is not in this build: it is the production build (-tags nostandins), which has no " +
	"dev mode (dev serves every email at /dev/mail); run api, worker or migrate, or build without the tag for local use")

// configure reads and validates the configuration for mode, before anything connects or
// listens: the mode's own checks (config.ForMode), and no dev at all in the production build.
func configure(mode string, getenv func(string) string) (*config.Config, error) {
	if mode == "dev" && !devModeBuilt {
		return nil, errNoDevMode
	}
	return config.ForMode(mode, getenv)
}
