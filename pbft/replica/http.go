package replica

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/pbft/node"
	"github.com/pbft-nats/pbft/pbft/node/nodehttp"
	"github.com/pbft-nats/pbft/pbft/obs"
)

// serveHTTP serves the replica's /healthz, /readyz, /metrics and, with pprof,
// /debug/pprof/ (package nodehttp) on ln, which New opened so that a bad or taken
// address stops the replica at start; stop shuts the server down and waits for it.
func serveHTTP(ln net.Listener, pprof bool, n *node.Node, nc *nats.Conn, logger *slog.Logger) (stop func()) {
	h := nodehttp.NewHandler(n, nodehttp.Options{Connected: nc.IsConnected, Pprof: pprof, Logger: logger})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := obs.Serve(ctx, ln, h, logger, 2*time.Second); err != nil {
			logger.Error("replica http server", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}
