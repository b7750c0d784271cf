package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/pbft/node"
	"github.com/pbft-nats/pbft/pbft/node/nodehttp"
)

// startHTTP serves the replica's /healthz, /readyz and /metrics (package nodehttp) on
// addr. It listens before it returns, so a bad or taken address stops the replica at
// start; stop shuts the server down and waits for it.
func startHTTP(addr string, n *node.Node, nc *nats.Conn, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("PBFT_HTTP_ADDR: %w", err)
	}
	h := nodehttp.NewHandler(n, nodehttp.Options{Connected: nc.IsConnected})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := nodehttp.Serve(ctx, ln, h, logger); err != nil {
			logger.Error("replica http server", "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}
