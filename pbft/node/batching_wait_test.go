package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/node"
)

// invokeTimed runs one request of client c and says how long it took.
func invokeTimed(t *testing.T, cl *client.Client, c string, ts uint64) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := cl.Invoke(ctx, client.Request{Client: c, Timestamp: ts, Op: []byte("set x=1")}); err != nil {
		t.Fatalf("%s/%d: %v", c, ts, err)
	}
	return time.Since(start)
}

// waitCluster runs four replicas with the batch timeout and tick given, and a client.
func waitCluster(t *testing.T, batchTimeout, tick time.Duration) (*memCluster, *client.Client) {
	t.Helper()
	c := newMemCluster(t, func(cfg *node.Config) { cfg.BatchTimeout, cfg.Tick = batchTimeout, tick }, nil)
	c.run()
	cl, err := client.New(client.Config{Keys: c.keys["reader"], Replicas: c.ids, Timeout: 20 * time.Second,
		Retransmit: 10 * time.Second,
		Connect:    func(h bus.Handler) (bus.Transport, error) { return c.hub.Join("reader", bus.RoleClient, h) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return c, cl
}

// runOneThenOther makes the batch of clients a and a2 (one bus message, so one batch)
// execute at the primary n1, then times client b's request: with nothing in flight, a
// and a2 are on their way back and b alone waits for them.
func runOneThenOther(t *testing.T, c *memCluster, cl *client.Client) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ps := cl.SendAll("n1", []client.Request{{Client: "a", Timestamp: 1, Op: []byte("set x=1")},
		{Client: "a2", Timestamp: 1, Op: []byte("set y=1")}})
	client.WaitAll(ctx, ps, func(i int, _ client.Result, err error) {
		if err != nil {
			t.Errorf("request %d of the first batch: %v", i, err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	poll.Eventually(t, 20*time.Second, "n1 executes the first batch", func() bool {
		return c.nodes["n1"].Metrics().LastExecuted >= 1
	})
	return invokeTimed(t, cl, "b", 1)
}

// One request at a time under alternating client names never waits for the client
// before it, however long the batch timeout and the ticks: a batch of one counts nobody
// as coming back.
func TestBatchSerialStreamOfManyClientsDoesNotWait(t *testing.T) {
	_, cl := waitCluster(t, time.Hour, time.Minute)
	for i := uint64(1); i <= 6; i++ {
		c := []string{"a", "b"}[i%2]
		if d := invokeTimed(t, cl, c, i); d > 5*time.Second {
			t.Fatalf("request %d of %s answered in %v: it waited for the client before it", i, c, d)
		}
	}
}

// A primary with nothing in flight waits for a client it just answered while that would
// grow the batch by more than half, but no longer than the batch timeout (here the ticks
// are too long for the client to be forgotten first).
func TestBatchWaitsForAReturningClientAtMostTheTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	c, cl := waitCluster(t, timeout, time.Minute)
	d := runOneThenOther(t, c, cl)
	if d < timeout {
		t.Fatalf("b answered in %v: the primary did not wait for a (batch timeout %v)", d, timeout)
	}
	if d > timeout+5*time.Second {
		t.Fatalf("b answered in %v, batch timeout %v", d, timeout)
	}
	// a and a2 are still counted as coming back (the ticks are long), so b's next request
	// waits again; a lone client (b answered, its next request the one queued) would not:
	// TestBatchTimeoutCostsALoneRequestNothing (package gateway) and TestCutNow; nor one
	// request at a time under many names: TestBatchSerialStreamOfManyClientsDoesNotWait.
}

// A client that does not come back delays a batch at most two ticks, however long the
// batch timeout: the primary forgets it.
func TestBatchForgetsAClientThatDoesNotComeBack(t *testing.T) {
	c, cl := waitCluster(t, time.Hour, 20*time.Millisecond)
	if d := runOneThenOther(t, c, cl); d > 5*time.Second {
		t.Fatalf("b answered in %v, batch timeout an hour, tick 20ms", d)
	}
}
