package nodehttp

import (
	"slices"
	"testing"

	"github.com/pbft-nats/pbft/pbft/node"
	"github.com/pbft-nats/pbft/pbft/obs"
)

// A replica's request latency and a gateway's HTTP latency share their buckets, so that
// the two histograms can be compared; node cannot import obs (it would pull Prometheus
// into the driver), so the two definitions are kept equal here.
func TestLatencyBucketsAgree(t *testing.T) {
	if !slices.Equal(node.LatencyBuckets, obs.LatencyBuckets) {
		t.Fatalf("node.LatencyBuckets %v, obs.LatencyBuckets %v", node.LatencyBuckets, obs.LatencyBuckets)
	}
}
