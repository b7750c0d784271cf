// Package nodehttp serves a replica's health, readiness and metrics over HTTP (cmd/replica
// serves it on PBFT_HTTP_ADDR):
//
//   - GET /healthz: 200 "ok" while the process runs (liveness).
//   - GET /readyz: 200 "ready" when the replica can take part in the protocol, 503 with
//     the reason otherwise. Ready means all of:
//     (1) connected to NATS;
//     (2) the node loop runs: it finished an iteration within StaleAfter (the loop wakes at
//     least once per tick, so a stuck or stopped loop shows at once);
//     (3) it is in touch with a quorum: since it started it has stepped an authenticated
//     message from at least 2f other replicas (with itself that is 2f+1, enough for the
//     protocol to make progress), or it has executed a batch;
//     (4) it is a member of its configuration: a replica that left the membership, or
//     waits to join one, is not ready.
//     A replica that lost its peers after (3) held stays ready as long as NATS and its
//     loop are fine: PBFT, not the load balancer, deals with a minority partition, and a
//     readiness that flaps with the network would only add restarts.
//   - GET /metrics: Prometheus metrics from a registry of its own (package obs): the
//     view, view changes, last executed, stable checkpoint, messages in, out and
//     rejected, the request latency and batch size histograms (see node.MetricsSnapshot
//     and Collector), and the Go runtime and process collectors.
//   - GET /debug/pprof/: net/http/pprof, with Options.Pprof (PBFT_PPROF=on) only.
package nodehttp

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/pbft-nats/pbft/pbft/node"
	"github.com/pbft-nats/pbft/pbft/obs"
)

// Source is what the handler reads: *node.Node implements it.
type Source interface {
	Metrics() node.MetricsSnapshot
	Stats() node.Stats
}

// Options configures the handler.
type Options struct {
	// Connected reports whether the replica's NATS connection is up; nil means always.
	Connected func() bool
	// StaleAfter is how long the node loop may go without an iteration before the
	// replica is not ready; 0 means DefaultStaleAfter.
	StaleAfter time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Pprof serves net/http/pprof under /debug/pprof/ (PBFT_PPROF).
	Pprof bool
	// Logger logs failures to serve metrics; nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func (o Options) connected() bool { return o.Connected == nil || o.Connected() }

// DefaultStaleAfter is the default of Options.StaleAfter.
const DefaultStaleAfter = 2 * time.Second

// NewHandler returns the handler of /healthz, /readyz, /metrics and, with o.Pprof,
// /debug/pprof/. Its metrics have a registry of their own.
func NewHandler(src Source, o Options) http.Handler {
	o = o.withDefaults()
	h := &handler{src: src, o: o}
	reg := obs.NewRegistry()
	reg.MustRegister(NewCollector(func() []Replica { return []Replica{{Source: src, Options: o}} }))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", h.readyz)
	mux.Handle("GET /metrics", obs.MetricsHandler(reg, o.Logger))
	if o.Pprof {
		obs.MountPprof(mux)
	}
	return mux
}

type handler struct {
	src Source
	o   Options
}

// Ready evaluates the readiness rule of the package documentation; reason says what is
// missing when it is not ready.
func Ready(m node.MetricsSnapshot, connected bool, staleAfter time.Duration, now time.Time) (ok bool, reason string) {
	switch {
	case !connected:
		return false, "not connected to NATS"
	case !m.Running || m.LoopAt.IsZero():
		return false, "node loop not running"
	case now.Sub(m.LoopAt) > staleAfter:
		return false, fmt.Sprintf("node loop stalled for %v", now.Sub(m.LoopAt).Round(time.Millisecond))
	case m.NotMember:
		return false, fmt.Sprintf("not a member of configuration %d", m.Configuration)
	case m.HeardFrom < 2*m.F && m.ExecutedBatches == 0:
		return false, fmt.Sprintf("heard from %d other replicas, need %d (or an execution)", m.HeardFrom, 2*m.F)
	}
	return true, ""
}

func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	ok, reason := Ready(h.src.Metrics(), h.o.connected(), h.o.StaleAfter, h.o.Now())
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "not ready: "+reason+"\n")
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}
