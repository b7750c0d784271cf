package nodehttp_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/node"
	"github.com/pbft-nats/pbft/pbft/node/nodehttp"
	"github.com/pbft-nats/pbft/pbft/obs/obstest"
)

type fakeSource struct {
	mu sync.Mutex
	m  node.MetricsSnapshot
	st node.Stats
}

func (f *fakeSource) Metrics() node.MetricsSnapshot { f.mu.Lock(); defer f.mu.Unlock(); return f.m }
func (f *fakeSource) Stats() node.Stats             { f.mu.Lock(); defer f.mu.Unlock(); return f.st }
func (f *fakeSource) set(fn func(*node.MetricsSnapshot)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.m)
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestReadiness(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	src := &fakeSource{m: node.MetricsSnapshot{ID: "replica-0", F: 1}}
	var connected atomic.Bool
	h := nodehttp.NewHandler(src, nodehttp.Options{Connected: connected.Load, Now: func() time.Time { return now }})

	if code, body := get(t, h, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	steps := []struct {
		name   string
		change func(m *node.MetricsSnapshot)
		conn   bool
		code   int
		reason string
	}{
		{"fresh", func(m *node.MetricsSnapshot) {}, false, 503, "not connected to NATS"},
		{"connected, loop not started", func(m *node.MetricsSnapshot) {}, true, 503, "node loop not running"},
		{"loop runs, alone", func(m *node.MetricsSnapshot) { m.Running, m.LoopAt = true, now }, true, 503, "heard from 0 other replicas, need 2"},
		{"one peer", func(m *node.MetricsSnapshot) { m.HeardFrom = 1 }, true, 503, "heard from 1"},
		{"quorum", func(m *node.MetricsSnapshot) { m.HeardFrom = 2 }, true, 200, ""},
		{"disconnected", func(m *node.MetricsSnapshot) {}, false, 503, "not connected to NATS"},
		{"loop stalled", func(m *node.MetricsSnapshot) { m.LoopAt = now.Add(-3 * time.Second) }, true, 503, "node loop stalled for 3s"},
		{"loop stopped", func(m *node.MetricsSnapshot) { m.LoopAt, m.Running = now, false }, true, 503, "node loop not running"},
		{"executed, no peers", func(m *node.MetricsSnapshot) { m.Running, m.HeardFrom, m.ExecutedBatches = true, 0, 1 }, true, 200, ""},
		{"left the membership", func(m *node.MetricsSnapshot) { m.Configuration, m.NotMember = 2, true }, true, 503, "not a member of configuration 2"},
	}
	for _, s := range steps {
		src.set(s.change)
		connected.Store(s.conn)
		code, body := get(t, h, "/readyz")
		if code != s.code || (s.code == 200 && body != "ready\n") || !strings.Contains(body, s.reason) {
			t.Fatalf("%s: readyz %d %q, want %d %q", s.name, code, body, s.code, s.reason)
		}
	}
}

func TestMetricsText(t *testing.T) {
	src := &fakeSource{
		m: node.MetricsSnapshot{ID: `r"0`, F: 1, View: 3, ViewActive: true, ViewChanges: 2, LastExecuted: 130,
			StableCheckpoint: 128, Running: true, LoopAt: time.Now(), HeardFrom: 3, ExecutedBatches: 40, CaughtUp: 6,
			Latency:   node.Histogram{Bounds: []float64{0.01, 0.1}, Counts: []uint64{1, 3}, Count: 4, Sum: 0.75},
			BatchSize: node.Histogram{Bounds: []float64{1, 2}, Counts: []uint64{5, 7}, Count: 7, Sum: 12},
			WAL:       node.WALStats{Units: 50, Syncs: 20, Rewrites: 1, SyncSeconds: 0.25, RewriteSeconds: 0.5}},
		st: node.Stats{In: map[string]uint64{"prepare": 9, "commit": 10}, Out: map[string]uint64{"commit": 4},
			Rejected: map[string]uint64{"bad_mac": 1}},
	}
	h := nodehttp.NewHandler(src, nodehttp.Options{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("metrics: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	body := rec.Body.String()
	// Prometheus writes a sample's labels in name order, le last.
	for _, want := range []string{
		"# TYPE pbft_replica_view gauge\npbft_replica_view{replica=\"r\\\"0\"} 3\n",
		"pbft_replica_ready{replica=\"r\\\"0\"} 1\n",
		"pbft_replica_view_changes_total{replica=\"r\\\"0\"} 2\n",
		"pbft_replica_last_executed{replica=\"r\\\"0\"} 130\n",
		"pbft_replica_stable_checkpoint{replica=\"r\\\"0\"} 128\n",
		"# TYPE pbft_replica_caught_up_total counter\npbft_replica_caught_up_total{replica=\"r\\\"0\"} 6\n",
		"pbft_messages_in_total{kind=\"commit\",replica=\"r\\\"0\"} 10\npbft_messages_in_total{kind=\"prepare\",replica=\"r\\\"0\"} 9\n",
		"pbft_messages_out_total{kind=\"commit\",replica=\"r\\\"0\"} 4\n",
		"# TYPE pbft_wal_syncs_total counter\npbft_wal_syncs_total{replica=\"r\\\"0\"} 20\n",
		"pbft_wal_units_total{replica=\"r\\\"0\"} 50\n",
		"pbft_wal_rewrites_total{replica=\"r\\\"0\"} 1\n",
		"pbft_wal_sync_seconds_total{replica=\"r\\\"0\"} 0.25\n",
		"pbft_wal_rewrite_seconds_total{replica=\"r\\\"0\"} 0.5\n",
		"pbft_messages_rejected_total{reason=\"bad_mac\",replica=\"r\\\"0\"} 1\n",
		"# TYPE pbft_request_latency_seconds histogram\n" +
			"pbft_request_latency_seconds_bucket{replica=\"r\\\"0\",le=\"0.01\"} 1\n" +
			"pbft_request_latency_seconds_bucket{replica=\"r\\\"0\",le=\"0.1\"} 3\n" +
			"pbft_request_latency_seconds_bucket{replica=\"r\\\"0\",le=\"+Inf\"} 4\n" +
			"pbft_request_latency_seconds_sum{replica=\"r\\\"0\"} 0.75\n" +
			"pbft_request_latency_seconds_count{replica=\"r\\\"0\"} 4\n",
		"pbft_batch_size_bucket{replica=\"r\\\"0\",le=\"2\"} 7\npbft_batch_size_bucket{replica=\"r\\\"0\",le=\"+Inf\"} 7\npbft_batch_size_sum{replica=\"r\\\"0\"} 12\n",
		// The Go runtime and the process.
		"\ngo_goroutines ", "\nprocess_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	obstest.Lint(t, body)
}

// Two handlers, as two replicas of one process would have, do not share metrics.
func TestMetricsPerHandler(t *testing.T) {
	a := nodehttp.NewHandler(&fakeSource{m: node.MetricsSnapshot{ID: "a", View: 1}}, nodehttp.Options{})
	b := nodehttp.NewHandler(&fakeSource{m: node.MetricsSnapshot{ID: "b", View: 2}}, nodehttp.Options{})
	_, bodyA := get(t, a, "/metrics")
	_, bodyB := get(t, b, "/metrics")
	if !strings.Contains(bodyA, `pbft_replica_view{replica="a"} 1`) || strings.Contains(bodyA, `replica="b"`) ||
		!strings.Contains(bodyB, `pbft_replica_view{replica="b"} 2`) || strings.Contains(bodyB, `replica="a"`) {
		t.Fatalf("metrics mixed up:\n%s\n---\n%s", bodyA, bodyB)
	}
}

// pprof is served with Options.Pprof only.
func TestPprof(t *testing.T) {
	off := nodehttp.NewHandler(&fakeSource{}, nodehttp.Options{})
	if code, _ := get(t, off, "/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("pprof off: %d, want 404", code)
	}
	on := nodehttp.NewHandler(&fakeSource{}, nodehttp.Options{Pprof: true})
	if code, body := get(t, on, "/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("pprof index: %d %.200s", code, body)
	}
	if code, body := get(t, on, "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("pprof goroutine: %d %.200s", code, body)
	}
}
