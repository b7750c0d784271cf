package node_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/kv"
	"github.com/pbft-nats/pbft/pbft/node"
)

// A replica restarted from its durable log in a later configuration, given the
// PBFT_NODE_IDS it was first started with (another order of the members here), must
// resolve its peers by the restored configuration: a configuration starts at view 0, so
// the restore reports no view change, and a node that kept the stale list read every
// signature by the wrong index ("bad signature": seen in the fault campaign, where a
// restarted replica dropped the NEW-VIEW it had missed until a state transfer). Seven
// replicas reverse their rotation; n1 stops, then n7, the first primary, and the other
// five change view; n1 restarts and must take the NEW-VIEW they send it.
func TestRestartInALaterConfigurationResolvesPeersByIt(t *testing.T) {
	first := []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7"}
	rotated := slices.Clone(first)
	slices.Reverse(rotated)
	dir := t.TempDir()
	for _, id := range append(slices.Clone(first), "admin") {
		if err := auth.WriteKeyPair(dir, id); err != nil {
			t.Fatal(err)
		}
	}
	data := map[string]string{}
	for _, id := range first {
		data[id] = t.TempDir()
	}
	hub := bus.NewHub("test")
	defer hub.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	stops := map[string]context.CancelFunc{}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	start := func(id string) {
		keys, err := auth.LoadKeyring(dir, id, first, uint64(time.Now().UnixNano()))
		if err != nil {
			t.Fatal(err)
		}
		p := pbft.DefaultConfig()
		p.Admin = "admin"
		n, err := node.New(node.Config{ID: id, NodeIDs: first, Protocol: p, Tick: 5 * time.Millisecond, Keys: keys,
			App: kv.New(), DataDir: data[id]},
			func(h bus.Handler) (bus.Transport, error) { return hub.Join(id, bus.RoleReplica, h) })
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		wg.Add(1)
		go func() { defer wg.Done(); defer close(done); _ = n.Run(ctx) }()
		stops[id] = func() { stop(); <-done }
	}
	for _, id := range first {
		start(id)
	}
	keys, err := auth.LoadKeyring(dir, "admin", first, uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	// The timeout leaves room for several view changes: with n1 and n7 stopped, the new
	// view needs all five live replicas, and a starved process (this test under -race on
	// a loaded machine) can make an attempt time out and the next view take over.
	c, err := client.New(client.Config{Keys: keys, Replicas: first, Timeout: 20 * time.Second, Retransmit: 50 * time.Millisecond,
		Connect: func(h bus.Handler) (bus.Transport, error) { return hub.Join("admin", bus.RoleClient, h) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.Reconfigure(ctx, client.Request{Client: "admin", Timestamp: 1}, rotated)
	if err != nil || res.Membership.Conf != 1 {
		t.Fatalf("reconfigure to %v: %+v, %v", rotated, res, err)
	}
	write := func(ts uint64) {
		t.Helper()
		out, err := c.Invoke(ctx, client.Request{Client: "c", Timestamp: ts, Op: []byte("set x=1")})
		if err != nil || string(out.Value) != "OK" || out.Conf != 1 {
			t.Fatalf("write %d: %+v, %v", ts, out, err)
		}
	}
	write(1)

	stops["n1"]()
	stops["n7"]()
	delete(stops, "n7")
	write(2)    // a later view (n6's, or a later one's if an attempt timed out), without n1
	start("n1") // from its log, in configuration 1, told the first order
	poll.Eventually(t, 20*time.Second, "n1 in the view of n2, a later one than 0, in configuration 1", func() bool {
		qctx, qcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer qcancel()
		a, err := c.Query(qctx, "n1", &pbft.Query{Op: pbft.OpInfo})
		if err != nil || a.Configuration != 1 || a.View == 0 {
			return false
		}
		b, err := c.Query(qctx, "n2", &pbft.Query{Op: pbft.OpInfo})
		return err == nil && b.Configuration == 1 && b.View == a.View
	})
	write(3)
}
