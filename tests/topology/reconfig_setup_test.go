package topology

import (
	"context"
	"testing"

	"github.com/pbft-nats/pbft/internal/topology"
)

// startFour builds the binaries and starts replicas n1..n4 with opts (Replicas and Logf
// are set here), for the reconfiguration tests: each then adds n5. The topology closes
// when the test ends; a failed test logs the tails of n1..n5's logs, and the gateway's
// when it serves HTTP.
func startFour(ctx context.Context, t *testing.T, opts topology.Options) (topology.Binaries, *topology.Topology, []string) {
	t.Helper()
	bins, err := topology.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	four := []string{"n1", "n2", "n3", "n4"}
	opts.Replicas, opts.Logf = four, t.Logf
	top, err := topology.Start(ctx, bins, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, id := range append(four, "n5") {
				t.Logf("log of %s (tail):\n%s", id, tailString(top.ReplicaLog(id), 4000))
			}
			if opts.GatewayHTTP {
				t.Logf("log of the gateway (tail):\n%s", tailString(top.GatewayLog(), 4000))
			}
		}
		if err := top.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return bins, top, four
}
