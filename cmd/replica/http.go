package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/pbft/node"
	"github.com/pbft-nats/pbft/pbft/node/nodehttp"
	"github.com/pbft-nats/pbft/pbft/obs"
)

// httpServer serves the replica's HTTP endpoints from the start of the process, before
// NATS is reachable: a liveness probe that found no server while the replica waits for
// NATS would have the pod killed. Until serveNode, /healthz answers 200 and /readyz 503
// with the reason; then package nodehttp serves /healthz, /readyz, /metrics and, with
// pprof, /debug/pprof/.
type httpServer struct {
	handler atomic.Pointer[http.Handler]
	pprof   bool
	logger  *slog.Logger
	stop    func()
}

// startHTTP listens on addr before it returns, so a bad or taken address stops the
// replica at start; the server says it waits for waitingFor until serveNode.
func startHTTP(addr string, pprof bool, waitingFor string, logger *slog.Logger) (*httpServer, error) {
	ln, err := obs.Listen(addr)
	if err != nil {
		return nil, err
	}
	s := &httpServer{pprof: pprof, logger: logger}
	waiting := waitingHandler("not ready: waiting for "+waitingFor+"\n", pprof, logger)
	s.handler.Store(&waiting)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*s.handler.Load()).ServeHTTP(w, r) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := obs.Serve(ctx, ln, h, logger, 2*time.Second); err != nil {
			logger.Error("replica http server", "err", err)
		}
	}()
	s.stop = func() { cancel(); <-done }
	return s, nil
}

// serveNode switches the endpoints to the running replica n on nc.
func (s *httpServer) serveNode(n *node.Node, nc *nats.Conn) {
	h := nodehttp.NewHandler(n, nodehttp.Options{Connected: nc.IsConnected, Pprof: s.pprof, Logger: s.logger})
	s.handler.Store(&h)
}

// waitingHandler is alive, not ready (readyz is the reason), and serves the process's
// runtime metrics.
func waitingHandler(readyz string, pprof bool, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, readyz)
	})
	mux.Handle("GET /metrics", obs.MetricsHandler(obs.NewRegistry(), logger))
	if pprof {
		obs.MountPprof(mux)
	}
	return mux
}
