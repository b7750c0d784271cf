// Command replica runs one PBFT replica against a NATS server, configured by the PBFT_
// environment variables (see README): PBFT_NODE_ID, PBFT_NODE_IDS, PBFT_NATS_URL and
// PBFT_KEYS_DIR are required. With PBFT_HTTP_ADDR it serves /healthz, /readyz, /metrics
// and, with PBFT_PPROF=on, /debug/pprof/ there (package nodehttp), from before it has
// reached NATS (not ready until then). It exits cleanly on SIGINT or SIGTERM.
//
//	replica keygen [-force] -dir DIR ID...
//
// writes a key pair (<id>.key, <id>.pub) for each id: replicas and gateways alike. It
// replaces no existing key without -force.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/internal/cli"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/node"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) > 1 {
		switch arg := os.Args[1]; {
		case arg == "keygen":
			return keygen(os.Args[2:], os.Stdout)
		case cli.IsHelp(arg):
			usage(os.Stdout)
			return nil
		case cli.IsVersion(arg):
			cli.WriteVersion(os.Stdout, "replica")
			return nil
		default:
			return fmt.Errorf("unknown command %q (commands: keygen, version, help; none runs the replica)", arg)
		}
	}
	s, err := config.Load()
	if err != nil {
		return err
	}
	if s.NodeID == "" || len(s.NodeIDs) == 0 {
		return errors.New("PBFT_NODE_ID and PBFT_NODE_IDS are required")
	}
	if s.NATSURL == "" {
		return errors.New("PBFT_NATS_URL is required: replicas of a cluster meet on a shared NATS server")
	}
	level, _ := config.ParseLevel(s.LogLevel)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("replica", s.NodeID)
	keys, err := auth.LoadKeyring(s.KeysDir, s.NodeID, s.NodeIDs, uint64(time.Now().UnixNano()))
	if err != nil {
		return err
	}
	cfg, err := node.FromSettings(s, s.NodeID, s.NodeIDs, keys, logger)
	if err != nil {
		return err
	}
	natsOpts, err := s.NATSOptions()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var web *httpServer
	if s.HTTPAddr != "" {
		// Serve /healthz while waiting for NATS, so that a liveness probe keeps the pod.
		if web, err = startHTTP(s.HTTPAddr, bool(s.Pprof), "NATS at "+bus.RedactURLs(s.NATSURL), logger); err != nil {
			return err
		}
		defer web.stop()
	}
	// A pod may start before NATS: wait for it (logged, capped backoff) rather than exit.
	nc, err := bus.ConnectWaiting(ctx, s.NATSURL, s.NodeID, logger, natsOpts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	n, err := node.New(cfg, func(h bus.Handler) (bus.Transport, error) {
		return bus.NewNATS(nc, s.Cluster, s.NodeID, bus.RoleReplica, h)
	})
	if err != nil {
		return err
	}
	if web != nil {
		web.serveNode(n, nc)
	}
	logger.Info("replica started", "nodes", s.NodeIDs, "nats", bus.RedactURLs(s.NATSURL), "cluster", s.Cluster)
	err = n.Run(ctx)
	logger.Info("replica stopped")
	return err
}
