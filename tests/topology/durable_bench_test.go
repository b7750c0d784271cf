package topology_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/topology"
	"github.com/pbft-nats/pbft/pbft/loadgen"
)

// BenchmarkMultiProcessDurable measures what the durable log costs (issue 19): n=4
// replica processes over 3 clustered NATS servers, as deployed, with and without
// PBFT_DATA_DIR on every replica, at 1 and 64 clients. Each sub-benchmark is one run of
// the load tool; compare the data=on figures with the data=off ones of the same run:
//
//	go test -run xxx -bench MultiProcessDurable -benchtime 1x ./tests/topology/
//
// PBFT_BENCH_DURATION sets each run's length (default 5s). PBFT_BENCH_BASELINE_REPLICA,
// a cmd/replica binary built from another revision, adds the same runs with it
// (bin=baseline), interleaved with this tree's (bin=this). PBFT_BENCH_PROFILE_DIR saves
// replica n1's CPU profile of each run there, and reports n1's heap in use near the
// start and at the end of the load (heap-start-MB, heap-end-MB). With data dirs, n1's log
// writer reports (its /metrics, from this tree's replica) syncs per second of load, and
// Readies and executed batches per sync: how well rounds share a sync.
// PBFT_BENCH_REPLICA_ENV adds PBFT_ settings to every replica, as for BenchmarkMultiProcess.
func BenchmarkMultiProcessDurable(b *testing.B) {
	d := benchDuration(b)
	bins, err := topology.Build(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	binaries := []struct {
		name string
		bins topology.Binaries
	}{{"this", bins}}
	if p := os.Getenv("PBFT_BENCH_BASELINE_REPLICA"); p != "" {
		base := bins
		base.Replica = p
		binaries = append(binaries, struct {
			name string
			bins topology.Binaries
		}{"baseline", base})
	}
	profiles := os.Getenv("PBFT_BENCH_PROFILE_DIR")
	ids := []string{"n1", "n2", "n3", "n4"}
	for _, clients := range []int{1, 64} {
		for _, data := range []bool{false, true} {
			for _, bin := range binaries {
				name := fmt.Sprintf("clients=%d/data=%s/bin=%s", clients, onOff(data), bin.name)
				b.Run(name, func(b *testing.B) {
					ctx := context.Background()
					o := topology.Options{NATSServers: 3, Replicas: ids, Cluster: "bench", DataDirs: data}
					o.Env = strings.Fields(os.Getenv("PBFT_BENCH_REPLICA_ENV"))
					if profiles != "" {
						o.Env = append(o.Env, "PBFT_PPROF=on")
					}
					top, err := topology.Start(ctx, bin.bins, o)
					if err != nil {
						b.Fatal(err)
					}
					defer top.Close()
					s := benchSettings(top, ids)
					var prof chan error
					var heapStart <-chan float64
					if profiles != "" {
						prof = make(chan error, 1)
						file := filepath.Join(profiles, "durable-"+strings.ReplaceAll(name, "/", "-")+".cpu.pb.gz")
						// The load tool runs the replicated load first, then its echo baseline.
						go func() { prof <- fetchTo(file, top.ReplicaHTTP("n1"), d-time.Second) }()
						heapStart = heapAfter(top.ReplicaHTTP("n1"), time.Second)
					}
					before := scrape(b, top.ReplicaHTTP("n1"))
					b.ResetTimer()
					res, err := loadgen.Run(ctx, s, loadgen.Options{Clients: clients, Duration: d, Nodes: len(ids), NATSURL: top.NATSURL(topology.GatewayID)})
					if err != nil {
						b.Fatal(err)
					}
					if res.Errors > 0 {
						b.Errorf("%d errors", res.Errors)
					}
					b.ReportMetric(res.ThroughputRPS, "req/s")
					b.ReportMetric(res.LatencyMS.P50, "p50-ms")
					b.ReportMetric(res.LatencyMS.P99, "p99-ms")
					if after := scrape(b, top.ReplicaHTTP("n1")); data && after["pbft_wal_syncs_total"] > 0 {
						syncs := after["pbft_wal_syncs_total"] - before["pbft_wal_syncs_total"]
						b.ReportMetric(syncs/d.Seconds(), "syncs/s")
						if syncs > 0 {
							b.ReportMetric((after["pbft_wal_units_total"]-before["pbft_wal_units_total"])/syncs, "readies/sync")
							b.ReportMetric((after["pbft_replica_executed_batches_total"]-before["pbft_replica_executed_batches_total"])/syncs, "batches/sync")
							b.ReportMetric(1000*(after["pbft_wal_sync_seconds_total"]-before["pbft_wal_sync_seconds_total"])/syncs, "ms/sync")
						}
						if rw := after["pbft_wal_rewrites_total"] - before["pbft_wal_rewrites_total"]; rw > 0 {
							b.ReportMetric(rw/d.Seconds(), "rewrites/s")
							b.ReportMetric(1000*(after["pbft_wal_rewrite_seconds_total"]-before["pbft_wal_rewrite_seconds_total"])/rw, "ms/rewrite")
						}
					}
					if prof != nil {
						if err := <-prof; err != nil {
							b.Errorf("profile: %v", err)
						}
						b.ReportMetric(<-heapStart, "heap-start-MB")
						b.ReportMetric(<-heapAfter(top.ReplicaHTTP("n1"), 0), "heap-end-MB")
					}
				})
			}
		}
	}
}

func onOff(v bool) string {
	if v {
		return "on"
	}
	return "off"
}

// fetchTo saves replica base's CPU profile of the next span to file.
func fetchTo(file, base string, span time.Duration) error {
	secs := max(1, int(span/time.Second))
	return saveURL(context.Background(), fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs), file)
}

// heapAfter reports, after wait, replica base's heap in use in MB (after a GC), or -1.
func heapAfter(base string, wait time.Duration) <-chan float64 {
	out := make(chan float64, 1)
	go func() {
		<-time.After(wait)
		out <- heapInUse(base)
	}()
	return out
}

// scrape reads replica base's counters that say how its log is written: the pbft_wal_*
// ones and its executed batches, by metric name (one replica per process).
func scrape(tb testing.TB, base string) map[string]float64 {
	out := map[string]float64{}
	for name, fam := range scrapeFamilies(tb, base) {
		if !strings.HasPrefix(name, "pbft_wal_") && name != "pbft_replica_executed_batches_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			out[name] += m.GetCounter().GetValue()
		}
	}
	return out
}

func heapInUse(base string) float64 {
	resp, err := http.Get(base + "/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapInuse = "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return n / (1 << 20)
			}
		}
	}
	return -1
}
