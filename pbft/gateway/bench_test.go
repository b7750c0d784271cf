package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// BenchmarkEmbeddedCluster measures committed requests per second through an embedded
// 4-replica cluster with C closed-loop clients, each waiting for the f+1 matching replies
// (Execute waits for all four), and reports latency percentiles.
func BenchmarkEmbeddedCluster(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			s := config.Default()
			s.RequestTimeout = 10 * time.Second
			logger := slog.New(slog.DiscardHandler)
			if os.Getenv("BENCH_LOG") != "" {
				logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
			}
			svc := NewService(s, logger, func(ids []string) (Backend, error) { return StartEmbedded(ids, s, logger) })
			defer svc.Close()
			l, _ := jsonl.Parse([]byte(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}`))
			if err := svc.Init(l); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			lat := make([][]time.Duration, clients)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for t := uint64(1); next.Add(1) <= int64(b.N); t++ {
						t0 := time.Now()
						if _, err := svc.Execute(context.Background(), "n1", RequestArgs{Operation: "set k=v", Client: fmt.Sprintf("b%d", c), Timestamp: t}); err != nil {
							b.Error(err)
							return
						}
						lat[c] = append(lat[c], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			var all []time.Duration
			for _, l := range lat {
				all = append(all, l...)
			}
			sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
			if len(all) == 0 {
				return
			}
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
		})
	}
}
