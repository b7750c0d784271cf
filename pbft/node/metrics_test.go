package node_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/node"
)

// Metrics reports what the node loop did: progress, peers heard from, request latency
// (first step to execution) and the requests per executed batch.
func TestMetricsSnapshot(t *testing.T) {
	mc := newMemCluster(t, nil, nil)
	nodes := mc.nodes
	before := nodes["n1"].Metrics()
	if before.Running || before.LastExecuted != 0 || before.Latency.Count != 0 || len(before.Latency.Counts) != len(node.LatencyBuckets) ||
		len(before.BatchSize.Counts) != len(node.BatchBuckets) || before.ID != "n1" {
		t.Fatalf("metrics before Run: %+v", before)
	}
	mc.run()
	ctx := context.Background()
	c := mc.client

	// Requests submitted to the primary n1, some of them concurrently so that batches form.
	const requests = 12
	qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
	defer qcancel()
	var qwg sync.WaitGroup
	errs := make(chan error, requests)
	for i := 1; i <= requests; i++ {
		qwg.Add(1)
		go func() {
			defer qwg.Done()
			req := c.NewRequest("c1", uint64(i), []byte(fmt.Sprintf("set k%d=%d", i, i)))
			a, err := c.Query(qctx, "n1", &node.Query{Op: node.OpSubmit, Request: pbft.Marshal(req), WaitMillis: 5000})
			if err == nil && !a.Ordered {
				err = fmt.Errorf("request %d not ordered: %+v", i, a)
			}
			errs <- err
		}()
	}
	qwg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	// Every replica executes every request; poll the snapshots until they show it.
	if err := poll.Within(10*time.Second, poll.Interval, func() (bool, error) {
		for _, n := range nodes {
			// LastExecuted is taken after the loop iteration whose flush counted the
			// batches: wait for that too.
			if m := n.Metrics(); m.BatchSize.Sum != requests || m.HeardFrom != 3 || !m.Running || m.LastExecuted != m.ExecutedBatches {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		for id, n := range nodes {
			t.Logf("%s: %+v", id, n.Metrics())
		}
		t.Fatalf("metrics do not show the executed requests: %v", err)
	}
	for id, n := range nodes {
		m := n.Metrics()
		if m.ID != id || m.F != 1 || m.View != 0 || m.Primary != "n1" || !m.ViewActive || m.ViewChanges != 0 {
			t.Errorf("%s: view state %+v", id, m)
		}
		if m.LastExecuted == 0 || m.LastExecuted > requests || m.ExecutedBatches != m.LastExecuted || m.BatchSize.Count != m.LastExecuted {
			t.Errorf("%s: last executed %d, %d batches executed, %d observed", id, m.LastExecuted, m.ExecutedBatches, m.BatchSize.Count)
		}
		if time.Since(m.LoopAt) > 5*time.Second {
			t.Errorf("%s: loop last ran %v ago", id, time.Since(m.LoopAt))
		}
		checkHistogram(t, id+" batch size", m.BatchSize)
		checkHistogram(t, id+" latency", m.Latency)
	}
	// Only the primary received the requests straight from the gateway: only it timed them.
	if lat := nodes["n1"].Metrics().Latency; lat.Count != requests || lat.Sum <= 0 {
		t.Errorf("n1 latency: %+v, want %d observations", lat, requests)
	}
	if lat := nodes["n2"].Metrics().Latency; lat.Count != 0 {
		t.Errorf("n2 timed requests it never received directly: %+v", lat)
	}

	// The snapshot is a copy: changing it changes nothing in the node.
	m := nodes["n2"].Metrics()
	m.BatchSize.Counts[0] += 100
	if nodes["n2"].Metrics().BatchSize.Counts[0] == m.BatchSize.Counts[0] {
		t.Error("Metrics returned a histogram shared with the node")
	}

	mc.stop()
	if nodes["n3"].Metrics().Running {
		t.Error("a stopped node reports its loop running")
	}
}

// checkHistogram checks that the buckets are cumulative and end at or below Count.
func checkHistogram(t *testing.T, name string, h node.Histogram) {
	t.Helper()
	if len(h.Counts) != len(h.Bounds) {
		t.Fatalf("%s: %d counts for %d bounds", name, len(h.Counts), len(h.Bounds))
	}
	for i := 1; i < len(h.Counts); i++ {
		if h.Counts[i] < h.Counts[i-1] || h.Bounds[i] <= h.Bounds[i-1] {
			t.Fatalf("%s: not cumulative: %+v", name, h)
		}
	}
	if n := len(h.Counts); n > 0 && h.Counts[n-1] > h.Count {
		t.Fatalf("%s: last bucket %d above count %d", name, h.Counts[n-1], h.Count)
	}
}
