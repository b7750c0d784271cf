package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// BenchmarkEmbeddedSubmit is BenchmarkEmbeddedCluster with Submit instead of Execute:
// each call returns once the primary's pre-prepare orders the request, so it measures
// ordering alone, not the replies.
func BenchmarkEmbeddedSubmit(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchClosedLoop(b, clients, func(svc *Service, a RequestArgs) error {
				_, err := svc.Submit(context.Background(), "n1", a)
				return err
			})
		})
	}
}

// benchClosedLoop starts a fresh embedded 4-replica cluster behind a Service, runs
// clients closed-loop goroutines that share b.N calls of op (client "b<i>", timestamps
// 1, 2, ... per client), and reports throughput and latency percentiles.
func benchClosedLoop(b *testing.B, clients int, op func(*Service, RequestArgs) error) {
	b.Helper()
	s := config.Default()
	s.RequestTimeout = 10 * time.Second
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("PBFT_BENCH_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	svc := NewService(s, logger, func(ids []string) (Backend, error) { return embedded.Start(ids, s, logger) })
	defer svc.Close()
	l, err := jsonl.Parse([]byte(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}`))
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.Init(l); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := fmt.Sprintf("b%d", c)
			for t := uint64(1); next.Add(1) <= int64(b.N); t++ {
				t0 := time.Now()
				if err := op(svc, RequestArgs{Operation: "set k=v", Client: client, Timestamp: t}); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
}
