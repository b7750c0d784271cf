package topology_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pbft-nats/pbft/internal/topology"
	"github.com/pbft-nats/pbft/pbft/loadgen"
)

// BenchmarkMultiProcess runs the load tool against separate processes: one nats-server
// and n cmd/replica processes over loopback TCP, authentication on, as issue 6 asks.
// Each sub-benchmark is one run of the tool (b.N is ignored beyond 1); the figures are
// reported as metrics:
//
//	go test -run xxx -bench MultiProcess -benchtime 1x ./tests/topology/
//
// PBFT_BENCH_DURATION sets each run's length (default 5s). PBFT_BENCH_PROFILE=DIR serves
// pprof on the replicas and keeps CPU profiles of every replica (n1 is the primary) and
// of the load tool (<name>-loadgen.cpu.pb.gz: the gateway's client, without the echo
// baseline) during the load, and the replicas' and the load tool's allocation profiles
// after it, in DIR.
// PBFT_BENCH_REPLICA_ENV holds space-separated PBFT_ settings for the replicas (say
// PBFT_BATCH_TIMEOUT=1ms), to compare settings in one tree. Besides throughput and
// latency, each run reports n1's mean batch and batches in flight when it proposed, and
// the replicas' CPU per request (n1's and all of theirs, from /metrics and /proc), the
// load tool's, and the NATS server's (bus-cpu-us/req; echo-bus-cpu-us/req is the
// server's for the echo baseline, with echo-cpu-us/req its clients' and responder's):
// on shared cores, the whole account of what a request costs beside the echo's.
func BenchmarkMultiProcess(b *testing.B) {
	d := benchDuration(b)
	profileDir := os.Getenv("PBFT_BENCH_PROFILE")
	var env []string
	if profileDir != "" {
		env = []string{"PBFT_PPROF=on"}
	}
	env = append(env, strings.Fields(os.Getenv("PBFT_BENCH_REPLICA_ENV"))...)
	bins, err := topology.Build(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{4, 7} {
		for _, tc := range []struct{ clients, size int }{{1, 0}, {64, 0}, {64, 1024}} {
			b.Run(fmt.Sprintf("n=%d/clients=%d/size=%d", n, tc.clients, tc.size), func(b *testing.B) {
				ids := make([]string, n)
				for i := range ids {
					ids[i] = fmt.Sprintf("n%d", i+1)
				}
				ctx := context.Background()
				top, err := topology.Start(ctx, bins, topology.Options{NATSServers: 1, Replicas: ids, Cluster: "bench", Env: env})
				if err != nil {
					b.Fatal(err)
				}
				defer top.Close()
				s := benchSettings(top, ids)
				url := top.NATSURL(topology.GatewayID)
				b.ResetTimer()
				var profiles *replicaProfiles
				if profileDir != "" {
					profiles = profileReplicas(b, profileDir, top, ids, d)
				}
				o := loadgen.Options{Clients: tc.clients, Duration: d, Size: tc.size, Nodes: n, NATSURL: url}
				if profiles != nil {
					o.CPUProfile = profiles.file("loadgen", "cpu")
					o.MemProfile = profiles.file("loadgen", "alloc")
				}
				before := readRoundStats(b, top, ids)
				var after roundStats
				o.BeforeBaseline = func() { after = readRoundStats(b, top, ids) }
				res, err := loadgen.Run(ctx, s, o)
				if res.BaselineRequests == 0 {
					after = readRoundStats(b, top, ids) // the run ended before its baseline
				}
				before.report(b, after, res.Requests)
				// The same NATS server carries the echo baseline after the cluster's run.
				if end := readRoundStats(b, top, ids); res.BaselineRequests > 0 && end.busCPU > 0 {
					b.ReportMetric((end.busCPU-after.busCPU)*1e6/float64(res.BaselineRequests), "echo-bus-cpu-us/req")
				}
				if res.Requests > 0 {
					b.ReportMetric(res.CPUSeconds*1e6/float64(res.Requests), "loadgen-cpu-us/req")
				}
				if profiles != nil {
					profiles.finish()
				}
				if err != nil {
					b.Fatal(err)
				}
				if res.Errors > 0 {
					b.Errorf("%d errors", res.Errors)
				}
				b.ReportMetric(res.ThroughputRPS, "req/s")
				b.ReportMetric(res.LatencyMS.P50, "p50-ms")
				b.ReportMetric(res.LatencyMS.P99, "p99-ms")
				b.ReportMetric(res.BaselineRPS, "baseline-req/s")
				// The load tool's own CPU per request (this process: the PBFT client, the
				// clients' goroutines), beside the echo baseline's: on two shared cores what
				// it spends is taken from the replicas.
				if res.Requests > 0 && res.CPUSeconds > 0 {
					b.ReportMetric(res.CPUSeconds*1e6/float64(res.Requests), "loadgen-cpu-us/req")
				}
				if res.BaselineRequests > 0 && res.BaselineCPUSeconds > 0 {
					b.ReportMetric(res.BaselineCPUSeconds*1e6/float64(res.BaselineRequests), "echo-cpu-us/req")
				}
			})
		}
	}
}
