package nodehttp_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/node"
	"github.com/pbft-nats/pbft/pbft/node/nodehttp"
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
			StableCheckpoint: 128, Running: true, LoopAt: time.Now(), HeardFrom: 3, ExecutedBatches: 40,
			Latency:   node.Histogram{Bounds: []float64{0.01, 0.1}, Counts: []uint64{1, 3}, Count: 4, Sum: 0.75},
			BatchSize: node.Histogram{Bounds: []float64{1, 2}, Counts: []uint64{5, 7}, Count: 7, Sum: 12}},
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
	for _, want := range []string{
		"# TYPE pbft_replica_view gauge\npbft_replica_view{replica=\"r\\\"0\"} 3\n",
		"pbft_replica_ready{replica=\"r\\\"0\"} 1\n",
		"pbft_replica_view_changes_total{replica=\"r\\\"0\"} 2\n",
		"pbft_replica_last_executed{replica=\"r\\\"0\"} 130\n",
		"pbft_replica_stable_checkpoint{replica=\"r\\\"0\"} 128\n",
		"pbft_messages_in_total{replica=\"r\\\"0\",kind=\"commit\"} 10\npbft_messages_in_total{replica=\"r\\\"0\",kind=\"prepare\"} 9\n",
		"pbft_messages_out_total{replica=\"r\\\"0\",kind=\"commit\"} 4\n",
		"pbft_messages_rejected_total{replica=\"r\\\"0\",reason=\"bad_mac\"} 1\n",
		"# TYPE pbft_request_latency_seconds histogram\n" +
			"pbft_request_latency_seconds_bucket{replica=\"r\\\"0\",le=\"0.01\"} 1\n" +
			"pbft_request_latency_seconds_bucket{replica=\"r\\\"0\",le=\"0.1\"} 3\n" +
			"pbft_request_latency_seconds_bucket{replica=\"r\\\"0\",le=\"+Inf\"} 4\n" +
			"pbft_request_latency_seconds_sum{replica=\"r\\\"0\"} 0.75\n" +
			"pbft_request_latency_seconds_count{replica=\"r\\\"0\"} 4\n",
		"pbft_batch_size_bucket{replica=\"r\\\"0\",le=\"2\"} 7\npbft_batch_size_bucket{replica=\"r\\\"0\",le=\"+Inf\"} 7\npbft_batch_size_sum{replica=\"r\\\"0\"} 12\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// Every line is a comment or "name{labels} value".
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i < 0 || !strings.Contains(line[:i], "{") || !strings.HasSuffix(line[:i], "}") {
			t.Errorf("bad sample line %q", line)
		}
	}
}

// Serve answers on a real listener and stops when its context ends.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nodehttp.Serve(ctx, ln, nodehttp.NewHandler(&fakeSource{}, nodehttp.Options{}), nil) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok\n" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if err := nodehttp.ListenAndServe(context.Background(), "256.0.0.1:1", nil, nil); err == nil {
		t.Fatal("ListenAndServe on a bad address succeeded")
	}
}
