package topology_test

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/topology"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/obs/obstest"
	dto "github.com/prometheus/client_model/go"
)

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat's CPU times.
const clockTicks = 100

// roundStats is what BenchmarkMultiProcess reads from the replicas around a run, to say
// what a run cost per request and per round: n1's (the primary's) batch and in-flight
// histograms, every replica's CPU time and the NATS servers' (the bus's).
type roundStats struct {
	batches, batched, proposals, inflight float64
	n1CPU, replicasCPU, busCPU            float64 // seconds
}

func readRoundStats(tb testing.TB, top *topology.Topology, ids []string) roundStats {
	var s roundStats
	for name, fam := range scrapeFamilies(tb, top.ReplicaHTTP(ids[0])) {
		for _, m := range fam.GetMetric() {
			h := m.GetHistogram()
			switch name {
			case "pbft_batch_size":
				s.batches, s.batched = float64(h.GetSampleCount()), h.GetSampleSum()
			case "pbft_primary_batches_in_flight":
				s.proposals, s.inflight = float64(h.GetSampleCount()), h.GetSampleSum()
			}
		}
	}
	for i, id := range ids {
		p, err := top.ReplicaProcess(id)
		if err != nil {
			continue
		}
		c := processCPU(p.Pid())
		if i == 0 {
			s.n1CPU = c
		}
		s.replicasCPU += c
	}
	for i := 0; ; i++ {
		p, err := top.NATSProcess(i)
		if err != nil {
			break
		}
		s.busCPU += processCPU(p.Pid())
	}
	return s
}

// report adds the figures of the run between s and end, which answered requests.
func (s roundStats) report(b *testing.B, end roundStats, requests int) {
	if d := end.batches - s.batches; d > 0 {
		b.ReportMetric((end.batched-s.batched)/d, "batch")
	}
	if d := end.proposals - s.proposals; d > 0 {
		b.ReportMetric((end.inflight-s.inflight)/d, "in-flight")
	}
	if requests > 0 {
		b.ReportMetric((end.n1CPU-s.n1CPU)*1e6/float64(requests), "n1-cpu-us/req")
		b.ReportMetric((end.replicasCPU-s.replicasCPU)*1e6/float64(requests), "replicas-cpu-us/req")
		if end.busCPU > 0 {
			b.ReportMetric((end.busCPU-s.busCPU)*1e6/float64(requests), "bus-cpu-us/req")
		}
	}
}

// benchSettings are the load tool's settings against top's cluster "bench" of ids.
func benchSettings(top *topology.Topology, ids []string) config.Settings {
	s := config.Default()
	s.KeysDir, s.ClientID, s.Cluster, s.NodeIDs = top.KeysDir(), topology.GatewayID, "bench", ids
	return s
}

// scrapeFamilies reads replica base's /metrics (nil if it does not answer).
func scrapeFamilies(tb testing.TB, base string) map[string]*dto.MetricFamily {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil
	}
	return obstest.Families(tb, string(body))
}

// processCPU is pid's user and system CPU time in seconds, 0 if unknown (not Linux).
func processCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may hold spaces:
	// utime and stime are the 14th and 15th fields of the line.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clockTicks
}

// benchDuration is a load's length: PBFT_BENCH_DURATION, 5s by default.
func benchDuration(tb testing.TB) time.Duration {
	tb.Helper()
	v := os.Getenv("PBFT_BENCH_DURATION")
	if v == "" {
		return 5 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		tb.Fatalf("PBFT_BENCH_DURATION: %v", err)
	}
	return d
}
