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
	if len(os.Args) > 1 {
		return fmt.Errorf("unknown command %q (run with no arguments for stdio mode)", os.Args[1])
	}
	if s.HTTPAddr != "" {
		return fmt.Errorf("PBFT_HTTP_ADDR is set, but the network mode is not built yet; unset it for stdio mode")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	svc := gateway.NewService(s, logger, func(ids []string) (gateway.Backend, error) {
		if s.NATSURL != "" {
			return gateway.ConnectExternal(s.NATSURL, ids, s)
		}
		return gateway.StartEmbedded(ids, s, logger)
	})
	defer svc.Close()
	return gateway.NewStdio(svc, logger).Run(ctx, os.Stdin, os.Stdout)
}
