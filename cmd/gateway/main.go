// Command gateway is the client front end of the PBFT cluster. With no arguments it runs
// stdio mode: JSON lines on stdin, replies on stdout (PROTOCOL.md). Without PBFT_NATS_URL
// it starts an embedded NATS server and one replica per node id named by init; with it,
// it talks to replicas run by cmd/replica.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
	"github.com/pbft-nats/pbft/pbft/loadgen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run() error {
	s, err := config.Load()
	if err != nil {
		return err
	}
	level, _ := config.ParseLevel(s.LogLevel)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if len(os.Args) > 1 && os.Args[1] == "bench" {
		return bench(s, os.Args[2:])
	}
	if len(os.Args) > 1 && os.Args[1] == "trace" {
		return traceCmd(s, os.Args[2:], logger)
	}
	if len(os.Args) > 1 {
		return fmt.Errorf("unknown command %q (commands: bench, trace; none runs stdio mode)", os.Args[1])
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	svc := gateway.NewService(s, logger, func(ids []string) (gateway.Backend, error) {
		if s.NATSURL != "" {
			return gateway.ConnectExternal(s.NATSURL, ids, s)
		}
		return embedded.Start(ids, s, logger)
	})
	defer svc.Close()
	if s.HTTPAddr == "" {
		return gateway.NewStdio(svc, logger).Run(ctx, os.Stdin, os.Stdout)
	}
	// Network mode: the cluster is started at once, as init would start it.
	ids := s.NodeIDs
	if len(ids) == 0 {
		ids = []string{"n1", "n2", "n3", "n4"}
	}
	if err := gateway.InitCluster(svc, ids); err != nil {
		return fmt.Errorf("starting the cluster %v: %w", ids, err)
	}
	return gateway.ListenAndServe(ctx, s.HTTPAddr, svc, logger)
}

// bench runs the load tool: gateway bench -clients C -duration D -size BYTES [-nodes N] [-json].
func bench(s config.Settings, args []string) error {
	o, err := loadgen.ParseFlags(args)
	if err != nil {
		loadgen.Usage(os.Stderr)
		return err
	}
	o.NATSURL = s.NATSURL
	o.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Run(ctx, s, o)
	if err != nil && res.Requests == 0 {
		return err
	}
	if o.JSON {
		return res.WriteJSON(os.Stdout)
	}
	res.WriteText(os.Stdout)
	return nil
}

// traceCmd prints the cluster's rounds as a text sequence diagram: gateway trace
// [-nodes ...] [-requests N] [-crash=false] [-color ...] [-duration D].
func traceCmd(s config.Settings, args []string, logger *slog.Logger) error {
	o, err := gateway.ParseTraceFlags(args, s, os.Stdout)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return gateway.RunTrace(ctx, s, o, os.Stdout, logger, func(ids []string, s config.Settings) (gateway.Backend, error) {
		return embedded.Start(ids, s, logger)
	})
}
