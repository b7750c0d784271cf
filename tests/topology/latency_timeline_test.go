//go:build pbft_timeline

package topology_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/internal/topology"
	"github.com/pbft-nats/pbft/pbft/loadgen"
)

// TestLatencyTimeline breaks one client's writes down along their critical path: one
// nats-server, four cmd/replica processes and the load tool with one client over loopback
// TCP, as BenchmarkMultiProcess's n=4/clients=1, every process built with the
// pbft_timeline tag (bus/timeline.go) so that it stamps each step of each message:
//
//	GOFLAGS=-tags=pbft_timeline go test -run TestLatencyTimeline -v ./tests/topology/
//
// PBFT_BENCH_DURATION sets the load's length (default 5s), PBFT_BENCH_REPLICA_ENV the
// replicas' extra environment (as for BenchmarkMultiProcess); PBFT_TIMELINE_OUT names a
// file for the table as well. The table is what it measured: it fails only if nothing could be
// traced.
func TestLatencyTimeline(t *testing.T) {
	d := benchDuration(t)
	dir := t.TempDir()
	if err := bus.StartTimeline(dir); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bins, err := topology.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"n1", "n2", "n3", "n4"}
	env := append([]string{"PBFT_TIMELINE_DIR=" + dir}, strings.Fields(os.Getenv("PBFT_BENCH_REPLICA_ENV"))...)
	top, err := topology.Start(ctx, bins, topology.Options{NATSServers: 1, Replicas: ids, Cluster: "bench", Env: env})
	if err != nil {
		t.Fatal(err)
	}
	defer top.Close()
	s := benchSettings(top, ids)
	res, err := loadgen.Run(ctx, s, loadgen.Options{Clients: 1, Duration: d, Nodes: len(ids), NATSURL: top.NATSURL(topology.GatewayID)})
	if err != nil {
		t.Fatal(err)
	}
	// The replicas write their stamps every 50 ms and the echo baseline ran after the
	// load for longer than that; this process's own are written now.
	bus.FlushTimeline()
	procs, err := readTimelines(dir)
	if err != nil {
		t.Fatal(err)
	}
	tl := traceRequests(procs, topology.GatewayID, "n1", 100)
	if tl.traced == 0 {
		for name, p := range procs {
			t.Logf("%s: %d reads, %d deliveries", name, len(p.stage[bus.StageRead]), len(p.stage[bus.StageDeliver]))
		}
		t.Fatalf("no request could be traced (%d invocations; lost at %v)", tl.invoked, tl.lost)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "load tool: %.0f req/s, p50 %.3f ms; echo baseline %.0f req/s (%.3f ms a round trip)\n",
		res.ThroughputRPS, res.LatencyMS.P50, res.BaselineRPS, 1000/res.BaselineRPS)
	tl.write(&b)
	t.Log("\n" + b.String())
	if out := os.Getenv("PBFT_TIMELINE_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
