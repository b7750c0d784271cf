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
//     protocol to make progress), or it has executed a batch.
//     A replica that lost its peers after (3) held stays ready as long as NATS and its
//     loop are fine: PBFT, not the load balancer, deals with a minority partition, and a
//     readiness that flaps with the network would only add restarts.
//   - GET /metrics: Prometheus' text format (version 0.0.4), written by hand: the view,
//     view changes, last executed, stable checkpoint, messages in, out and rejected, the
//     request latency and batch size histograms (see node.MetricsSnapshot).
package nodehttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pbft-nats/pbft/pbft/node"
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
}

// DefaultStaleAfter is the default of Options.StaleAfter.
const DefaultStaleAfter = 2 * time.Second

// NewHandler returns the handler of /healthz, /readyz and /metrics.
func NewHandler(src Source, o Options) http.Handler {
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	h := &handler{src: src, o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", h.readyz)
	mux.HandleFunc("GET /metrics", h.metrics)
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
	case m.HeardFrom < 2*m.F && m.ExecutedBatches == 0:
		return false, fmt.Sprintf("heard from %d other replicas, need %d (or an execution)", m.HeardFrom, 2*m.F)
	}
	return true, ""
}

func (h *handler) connected() bool { return h.o.Connected == nil || h.o.Connected() }

func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	ok, reason := Ready(h.src.Metrics(), h.connected(), h.o.StaleAfter, h.o.Now())
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "not ready: "+reason+"\n")
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

func (h *handler) metrics(w http.ResponseWriter, r *http.Request) {
	m := h.src.Metrics()
	st := h.src.Stats()
	var b strings.Builder
	id := promLabel(m.ID)
	gauge := func(name, typ, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s{replica=%s} %s\n", name, help, name, typ, name, id, formatFloat(v))
	}
	ready, _ := Ready(m, h.connected(), h.o.StaleAfter, h.o.Now())
	gauge("pbft_replica_ready", "gauge", "1 when /readyz answers 200.", boolFloat(ready))
	gauge("pbft_replica_nats_connected", "gauge", "1 while the NATS connection is up.", boolFloat(h.connected()))
	gauge("pbft_replica_view", "gauge", "The replica's current view.", float64(m.View))
	gauge("pbft_replica_view_active", "gauge", "1 when the replica is active in its view, 0 while it changes view.", boolFloat(m.ViewActive))
	gauge("pbft_replica_view_changes_total", "counter", "View changes the replica completed.", float64(m.ViewChanges))
	gauge("pbft_replica_last_executed", "gauge", "Sequence number of the last executed batch.", float64(m.LastExecuted))
	gauge("pbft_replica_stable_checkpoint", "gauge", "Sequence number of the last stable checkpoint (the low watermark).", float64(m.StableCheckpoint))
	gauge("pbft_replica_executed_batches_total", "counter", "Batches executed by this process.", float64(m.ExecutedBatches))
	gauge("pbft_replica_peers_heard", "gauge", "Other replicas this process has stepped an authenticated message from.", float64(m.HeardFrom))
	counters := func(name, help, label string, values map[string]uint64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s{replica=%s,%s=%s} %d\n", name, id, label, promLabel(k), values[k])
		}
	}
	counters("pbft_messages_in_total", "Protocol messages stepped by the replica, by kind.", "kind", st.In)
	counters("pbft_messages_out_total", "Protocol messages sent by the replica, by kind.", "kind", st.Out)
	counters("pbft_messages_rejected_total", "Messages dropped by the replica, by reason.", "reason", st.Rejected)
	histogram(&b, "pbft_request_latency_seconds", "Time from a request's first step into this replica to its execution.", id, m.Latency)
	histogram(&b, "pbft_batch_size", "Requests per executed batch.", id, m.BatchSize)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = io.WriteString(w, b.String())
}

func histogram(b *strings.Builder, name, help, id string, h node.Histogram) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	for i, bound := range h.Bounds {
		fmt.Fprintf(b, "%s_bucket{replica=%s,le=\"%s\"} %d\n", name, id, formatFloat(bound), h.Counts[i])
	}
	fmt.Fprintf(b, "%s_bucket{replica=%s,le=\"+Inf\"} %d\n", name, id, h.Count)
	fmt.Fprintf(b, "%s_sum{replica=%s} %s\n", name, id, formatFloat(h.Sum))
	fmt.Fprintf(b, "%s_count{replica=%s} %d\n", name, id, h.Count)
}

func boolFloat(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// promLabel quotes a label value for Prometheus' text format.
func promLabel(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}

// ListenAndServe serves h on addr until ctx is done, then shuts the server down. It
// returns once the listener is closed; an error to listen is returned at once.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("nodehttp: listen %s: %w", addr, err)
	}
	return Serve(ctx, ln, h, logger)
}

// Serve is ListenAndServe on an open listener.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("replica http listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
