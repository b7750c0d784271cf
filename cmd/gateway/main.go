// Command gateway is the client front end of the PBFT cluster. With no arguments it runs
// stdio mode: JSON lines on stdin, replies on stdout (docs/protocol.md). Without PBFT_NATS_URL
// it starts an embedded NATS server and one replica per node id named by init; with it,
// it talks to replicas run by cmd/replica.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pbft-nats/pbft/internal/cli"
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
	// Help and version work whatever the environment holds, so they come before Load.
	if len(os.Args) > 1 {
		switch arg := os.Args[1]; {
		case cli.IsHelp(arg):
			usage(os.Stdout)
			return nil
		case cli.IsVersion(arg):
			cli.WriteVersion(os.Stdout, "gateway")
			return nil
		case arg != "bench" && arg != "trace":
			return fmt.Errorf("unknown command %q (commands: bench, trace, version, help; none runs stdio mode)", arg)
		}
	}
	var sub []string
	if len(os.Args) > 1 {
		sub = subArgs(os.Args[2:])
	}
	s, err := settingsFor(sub)
	if err != nil {
		return err
	}
	level, _ := config.ParseLevel(s.LogLevel)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if len(os.Args) > 1 && os.Args[1] == "bench" {
		if err := requireNodeIDs(s, "gateway bench"); err != nil {
			return err
		}
		return bench(s, sub)
	}
	if len(os.Args) > 1 && os.Args[1] == "trace" {
		return traceCmd(s, sub, logger)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if s.HTTPAddr == "" {
		s = s.ForStdio()
	}
	svc := gateway.NewService(s, logger, func(ids []string) (gateway.Backend, error) {
		if s.NATSURL != "" {
			return gateway.ConnectExternalWaiting(ctx, s.NATSURL, ids, s, logger)
		}
		return embedded.Start(ids, s, logger)
	})
	defer svc.Close()
	if s.HTTPAddr == "" {
		return gateway.NewStdio(svc, logger).Run(ctx, os.Stdin, os.Stdout)
	}
	// Network mode: the cluster is started (or joined) at once, as init would. It may
	// wait for NATS: meanwhile the API answers 503 and /readyz is not ready.
	if err := requireNodeIDs(s, "network mode (PBFT_HTTP_ADDR)"); err != nil {
		return err
	}
	ids := s.NodeIDs
	if len(ids) == 0 {
		ids = []string{"n1", "n2", "n3", "n4"}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Against external replicas the gateway also serves the client protocol on NATS
	// (pbft.<cluster>.api); it stops answering there before the cluster is closed.
	natsAPI := make(chan *gateway.NATSAPI, 1)
	go func() {
		if err := gateway.InitCluster(svc, ids); err != nil {
			what := "starting the embedded cluster"
			if s.NATSURL != "" {
				what = "joining the replicas"
			}
			cancel(fmt.Errorf("%s %v: %w", what, ids, err))
			return
		}
		api, err := gateway.ServeNATSBackend(svc, logger)
		if err != nil {
			cancel(fmt.Errorf("serving the NATS API: %w", err))
		}
		natsAPI <- api
	}()
	err = gateway.ListenAndServe(ctx, s.HTTPAddr, svc, logger)
	select {
	case api := <-natsAPI:
		api.Stop()
	default:
	}
	if cause := context.Cause(ctx); err == nil && cause != nil && cause != context.Canceled {
		return cause
	}
	return err
}

// requireNodeIDs refuses external mode without PBFT_NODE_IDS: the gateway starts no
// replicas there and cannot know their ids (stdio mode takes them from init).
func requireNodeIDs(s config.Settings, mode string) error {
	if s.NATSURL != "" && len(s.NodeIDs) == 0 {
		return fmt.Errorf("%s with PBFT_NATS_URL needs PBFT_NODE_IDS: the replicas run elsewhere and the gateway cannot guess their ids (e.g. PBFT_NODE_IDS=replica-0,replica-1,replica-2,replica-3)", mode)
	}
	return nil
}

// bench runs the load tool: gateway bench -clients C -duration D -size BYTES [-nodes N] [-read-ratio R] [-cpuprofile FILE] [-memprofile FILE] [-trace FILE] [-json].
func bench(s config.Settings, args []string) error {
	o, err := loadgen.ParseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		loadgen.Usage(os.Stdout)
		cli.WriteEnvironment(os.Stdout)
		return nil
	}
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
	if errors.Is(err, flag.ErrHelp) { // ParseTraceFlags has printed the flags
		cli.WriteEnvironment(os.Stdout)
		return nil
	}
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return gateway.RunTrace(ctx, s, o, os.Stdout, logger, func(ids []string, s config.Settings) (gateway.Backend, error) {
		return embedded.Start(ids, s, logger)
	})
}
