package gateway

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/bus"
)

// The live page of the cluster: GET / serves web/index.html, GET /ui/ its script and
// style, and GET /v1/trace streams the replicas' trace events (package trace) as
// server-sent events: first a "hello" event describing the cluster, then one message per
// trace batch, one JSON event per data line.

//go:embed web
var webFS embed.FS

// traceKeepAlive is the period of SSE comments that keep idle proxies from closing the
// stream.
const traceKeepAlive = 15 * time.Second

// traceWatcherBuffer is how many trace messages wait for one slow browser before the
// relay drops (and counts) what it cannot take.
const traceWatcherBuffer = 256

// traceRoutes registers the page and the event stream on mux.
func (a *httpAPI) traceRoutes(mux *http.ServeMux) {
	ui, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(ui)
	mux.Handle("GET /{$}", a.count("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, ui, "index.html")
	}))
	mux.Handle("GET /ui/", a.count("/ui", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.StripPrefix("/ui", files).ServeHTTP(w, r)
	}))
	// Not counted through a.count: the stream needs the real ResponseWriter to flush.
	relay := &traceRelay{watchers: map[*traceWatcher]struct{}{}}
	mux.HandleFunc("GET /v1/trace", func(w http.ResponseWriter, r *http.Request) { a.traceStream(relay, w, r) })
}

// traceHello is the first event of a stream.
type traceHello struct {
	Cluster  string   `json:"cluster"`
	Nodes    []string `json:"nodes"`
	N        int      `json:"n"`
	F        int      `json:"f"`
	Prepare  int      `json:"prepare_quorum"` // 2f
	Commit   int      `json:"commit_quorum"`  // 2f+1
	Embedded bool     `json:"embedded"`
	// Trace is the embedded replicas' PBFT_TRACE (the gateway's own), or traceByReplicas
	// for external replicas, whose own PBFT_TRACE decides what they publish.
	Trace  string `json:"trace"`
	Client string `json:"client"`
}

// traceByReplicas is the hello's Trace against external replicas: the page draws
// whatever they publish, whatever this gateway's PBFT_TRACE.
const traceByReplicas = "replicas"

func (a *httpAPI) traceStream(relay *traceRelay, w http.ResponseWriter, r *http.Request) {
	a.metrics.requests.WithLabelValues("/v1/trace", "200").Inc()
	b := a.svc.Backend()
	if b == nil {
		a.writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "cluster not initialised")
		return
	}
	watcher, err := relay.watch(b, a.svc.settings.Cluster)
	if err != nil {
		a.writeError(w, http.StatusServiceUnavailable, CodeUnavailable, fmt.Sprintf("trace: %v", err))
		return
	}
	defer relay.unwatch(watcher)
	ids, q := a.svc.members()
	ids = slices.Clone(ids)
	tracing := traceByReplicas
	if b.InProcess() {
		tracing = a.svc.settings.Trace.String()
	}
	hello, _ := json.Marshal(traceHello{Cluster: a.svc.settings.Cluster, Nodes: ids, N: q.N, F: q.F,
		Prepare: 2 * q.F, Commit: 2*q.F + 1, Embedded: b.InProcess(), Trace: tracing,
		Client: a.svc.settings.ClientID})

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var buf []byte
	buf = append(buf, "retry: 1000\nevent: hello\ndata: "...)
	buf = append(append(buf, hello...), "\n\n"...)
	if _, err := w.Write(buf); err != nil || rc.Flush() != nil {
		return
	}
	keepAlive := time.NewTicker(traceKeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepAlive.C:
			buf = fmt.Appendf(buf[:0], ": dropped %d\n\n", watcher.dropped.Load())
		case data := <-watcher.ch:
			buf = appendSSEData(buf[:0], data)
			// Send what else is queued in the same write.
			for more := true; more && len(buf) < 64<<10; {
				select {
				case data := <-watcher.ch:
					buf = appendSSEData(buf, data)
				default:
					more = false
				}
			}
		}
		if _, err := w.Write(buf); err != nil || rc.Flush() != nil {
			return
		}
	}
}

// appendSSEData appends one SSE message whose data lines are the lines of data.
func appendSSEData(buf, data []byte) []byte {
	for line := range strings.SplitSeq(strings.TrimRight(string(data), "\n"), "\n") {
		buf = append(buf, "data: "...)
		buf = append(buf, line...)
		buf = append(buf, '\n')
	}
	return append(buf, '\n')
}

// traceRelay subscribes to the cluster's trace subject once, on the first watcher, and
// hands every message to each watcher without ever blocking the subscription.
type traceRelay struct {
	mu       sync.Mutex
	backend  Backend
	sub      *nats.Subscription
	watchers map[*traceWatcher]struct{}
}

type traceWatcher struct {
	ch      chan []byte
	dropped atomic.Uint64
}

func (t *traceRelay) watch(b Backend, cluster string) (*traceWatcher, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sub == nil || t.backend != b || !t.sub.IsValid() {
		nc, err := traceConn(b)
		if err != nil {
			return nil, err
		}
		sub, err := bus.SubscribeTrace(nc, cluster, t.deliver)
		if err != nil {
			return nil, err
		}
		t.sub, t.backend = sub, b
	}
	w := &traceWatcher{ch: make(chan []byte, traceWatcherBuffer)}
	t.watchers[w] = struct{}{}
	return w, nil
}

func (t *traceRelay) unwatch(w *traceWatcher) {
	t.mu.Lock()
	delete(t.watchers, w)
	t.mu.Unlock()
}

func (t *traceRelay) deliver(_ string, data []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for w := range t.watchers {
		select {
		case w.ch <- data:
		default:
			w.dropped.Add(1)
		}
	}
}

// traceConn returns a connection that sees the cluster's trace subject: a new in-process
// one for the embedded cluster (closed with it), the gateway's own for external replicas.
func traceConn(b Backend) (*nats.Conn, error) {
	if t, ok := b.(traceConner); ok {
		return t.TraceConn()
	}
	return nil, errors.New("no NATS connection to the cluster")
}
