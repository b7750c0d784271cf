package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// heapMB is the live heap after a full collection, in MB.
func heapMB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// driveRequests runs requests from..to-1 through svc with `clients` concurrent clients
// calling Execute; each client has its own name and increasing timestamps (ts holds the
// next timestamp of each client, carried across calls).
func driveRequests(tb testing.TB, svc *Service, clients int, ts []uint64, from, to int64) {
	tb.Helper()
	var next atomic.Int64
	next.Store(from)
	var wg sync.WaitGroup
	var failed atomic.Bool
	var firstErr error
	var once sync.Once
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := fmt.Sprintf("m%d", c)
			for !failed.Load() {
				i := next.Add(1) - 1
				if i >= to {
					return
				}
				ts[c]++
				op := fmt.Sprintf("set k%d=%d", i%1024, i)
				if _, err := svc.Execute(context.Background(), "n1", RequestArgs{Operation: op, Client: client, Timestamp: ts[c]}); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("request %d by %s: %w", i, client, err) })
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		tb.Fatal(firstErr)
	}
}

// BenchmarkMemoryFlat checks that memory stays flat over a long run: the live heap after
// 100k requests and after PBFT_MEM_REQUESTS (default 1,000,000) must be within 1.5x.
// The request count is fixed, not b.N, so run it once:
//
//	PBFT_MEM_REQUESTS=300000 go test -run '^$' -bench MemoryFlat -benchtime 1x ./pbft/gateway/
func BenchmarkMemoryFlat(b *testing.B) {
	total := int64(1_000_000)
	if v := os.Getenv("PBFT_MEM_REQUESTS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("PBFT_MEM_REQUESTS=%q: want a positive integer", v)
		}
		total = n
	}
	const first = int64(100_000)
	if total < first {
		total = first
	}
	const clients = 64
	for b.Loop() {
		svc := startMemService(b)
		ts := make([]uint64, clients)
		start := time.Now()
		driveRequests(b, svc, clients, ts, 0, first)
		h1 := heapMB()
		t1 := time.Since(start)
		driveRequests(b, svc, clients, ts, first, total)
		h2 := heapMB()
		elapsed := time.Since(start)
		svc.Close()
		ratio := h2 / h1
		b.ReportMetric(h1, "heap-100k-MB")
		b.ReportMetric(h2, "heap-end-MB")
		b.ReportMetric(ratio, "ratio")
		b.ReportMetric(float64(total)/elapsed.Seconds(), "req/s")
		b.Logf("%d requests in %v (first 100k in %v): heap %.1f MB -> %.1f MB, ratio %.2f", total, elapsed, t1, h1, h2, ratio)
		if ratio > 1.5 {
			b.Fatalf("heap grew from %.1f MB after %d requests to %.1f MB after %d (ratio %.2f > 1.5)", h1, first, h2, total, ratio)
		}
	}
}

// startMemService is startService for benchmarks too, with a generous request timeout.
func startMemService(tb testing.TB, adjust ...func(*config.Settings)) *Service {
	tb.Helper()
	s := testSettings()
	s.RequestTimeout = 10 * time.Second
	for _, f := range adjust {
		f(&s)
	}
	svc := NewService(s, slog.New(slog.DiscardHandler), func(ids []string) (Backend, error) {
		return embedded.Start(ids, s, slog.New(slog.DiscardHandler))
	})
	tb.Cleanup(svc.Close)
	l, err := jsonl.Parse([]byte(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}`))
	if err != nil {
		tb.Fatal(err)
	}
	if err := svc.Init(l); err != nil {
		tb.Fatal(err)
	}
	return svc
}

// TestMemoryStaysBounded is the quick form of BenchmarkMemoryFlat: the live heap after
// 3,000 requests is within 1.5x (plus a few MB of slack) of the heap after 1,000. The
// checkpoint interval is small so that both points are many checkpoints in: the fixed
// structures allocated at the first one (the status history ring) are in both.
func TestMemoryStaysBounded(t *testing.T) {
	svc := startMemService(t, func(s *config.Settings) { s.CheckpointInterval, s.LogWindow = 8, 16 })
	const clients = 64
	ts := make([]uint64, clients)
	driveRequests(t, svc, clients, ts, 0, 1000)
	h1 := heapMB()
	driveRequests(t, svc, clients, ts, 1000, 3000)
	h2 := heapMB()
	t.Logf("heap after 1,000 requests %.1f MB, after 3,000 %.1f MB", h1, h2)
	const slackMB = 4
	if h2 > 1.5*h1+slackMB {
		t.Fatalf("heap grew from %.1f MB to %.1f MB (more than 1.5x + %d MB)", h1, h2, slackMB)
	}
}
