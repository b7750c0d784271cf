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

// A replica stopped while the administrator runs two reconfigurations (n5 in, then n5
// out and n6 in), restarted with its data dir and the ids it was first started with,
// catches up through the members' transition certificates (their signatures checked
// with the keys of PBFT_KEYS_DIR, n5's read on demand) into configuration 2 and executes
// what its members execute.
func TestReplicaThatSleptThroughTwoReconfigurationsRejoins(t *testing.T) {
	first := []string{"n1", "n2", "n3", "n4"}
	c1 := []string{"n1", "n2", "n3", "n4", "n5"}
	c2 := []string{"n1", "n2", "n3", "n4", "n6"}
	dir := t.TempDir()
	for _, id := range []string{"n1", "n2", "n3", "n4", "n5", "n6", "admin"} {
		if err := auth.WriteKeyPair(dir, id); err != nil {
			t.Fatal(err)
		}
	}
	hub := bus.NewHub("test")
	defer hub.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	stops := map[string]func(){}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	data := t.TempDir()
	start := func(id string, ids []string, join bool) {
		keys, err := auth.LoadKeyring(dir, id, ids, uint64(time.Now().UnixNano()))
		if err != nil {
			t.Fatal(err)
		}
		p := pbft.DefaultConfig()
		p.Admin = "admin"
		cfg := node.Config{ID: id, NodeIDs: ids, Protocol: p, Tick: 5 * time.Millisecond, Keys: keys, App: kv.New(), Join: join}
		if id == "n4" {
			cfg.DataDir = data
		}
		n, err := node.New(cfg, func(h bus.Handler) (bus.Transport, error) { return hub.Join(id, bus.RoleReplica, h) })
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
		start(id, first, false)
	}
	c := clientFromDir(t, hub, "admin", dir, first)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	write := func(ts uint64, conf uint64) {
		t.Helper()
		out, err := c.Invoke(ctx, client.Request{Client: "c", Timestamp: ts, Op: []byte("set x=1")})
		if err != nil || string(out.Value) != "OK" || out.Conf != conf {
			t.Fatalf("write %d: %+v, %v", ts, out, err)
		}
	}
	info := func(id string) *pbft.Answer { return infoWithDigest(ctx, c, id) }
	write(1, 0)
	stops["n4"]()
	delete(stops, "n4")

	start("n5", c1, true)
	if res, err := c.Reconfigure(ctx, client.Request{Client: "admin", Timestamp: 1}, c1); err != nil || res.Membership.Conf != 1 {
		t.Fatalf("reconfigure to %v: %+v, %v", c1, res, err)
	}
	write(2, 1)
	start("n6", c2, true)
	if res, err := c.Reconfigure(ctx, client.Request{Client: "admin", Timestamp: 2}, c2); err != nil || res.Membership.Conf != 2 {
		t.Fatalf("reconfigure to %v: %+v, %v", c2, res, err)
	}
	write(3, 2)

	start("n4", first, false) // from its data dir, told configuration 0
	poll.Eventually(t, 30*time.Second, "n4 a member of configuration 2 with n1's state", func() bool {
		a, b := info("n4"), info("n1")
		return a.Configuration == 2 && !a.NotMember && slices.Equal(a.Members, c2) &&
			a.LastExecuted == b.LastExecuted && a.StateDigest != "" && a.StateDigest == b.StateDigest
	})
	write(4, 2)
	poll.Eventually(t, 30*time.Second, "n4 executes the next write", func() bool {
		a, b := info("n4"), info("n1")
		return a.LastExecuted == b.LastExecuted && a.StateDigest == b.StateDigest
	})
}

// A joiner started only after the administrator's reconfiguration was answered (it never
// received the request) asks the members it will run with for its admission, checks its
// own tag in the request one of them kept, and joins: a member of configuration 1 whose
// reply the next write counts.
func TestJoinerStartedAfterItsAdmissionJoins(t *testing.T) {
	old, next := []string{"n1", "n2", "n3", "n4"}, []string{"n1", "n2", "n3", "n4", "n5"}
	dir := t.TempDir()
	for _, id := range append(slices.Clone(next), "admin") {
		if err := auth.WriteKeyPair(dir, id); err != nil {
			t.Fatal(err)
		}
	}
	hub := bus.NewHub("test")
	defer hub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, id := range old {
		startFromDir(ctx, t, &wg, hub, id, dir, old, false)
	}
	c := clientFromDir(t, hub, "admin", dir, old)
	res, err := c.Reconfigure(ctx, client.Request{Client: "admin", Timestamp: 1}, next)
	if err != nil || res.Membership.Conf != 1 || slices.Contains(res.Installed, "n5") {
		t.Fatalf("reconfiguration %+v, %v: want configuration 1 without n5 running it", res, err)
	}
	if out, err := c.Invoke(ctx, client.Request{Client: "c", Timestamp: 1, Op: []byte("set x=1")}); err != nil || out.Conf != 1 {
		t.Fatalf("a write before n5 runs: %+v, %v", out, err)
	}
	startFromDir(ctx, t, &wg, hub, "n5", dir, next, true)
	poll.Eventually(t, 30*time.Second, "n5 a member of configuration 1", func() bool {
		qctx, qcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer qcancel()
		a, err := c.Query(qctx, "n5", &pbft.Query{Op: pbft.OpInfo})
		return err == nil && a.Configuration == 1 && !a.NotMember
	})
	if out, err := c.Invoke(ctx, client.Request{Client: "c", Timestamp: 2, Op: []byte("set x=2")}); err != nil || out.Conf != 1 {
		t.Fatalf("a write after n5 joined: %+v, %v", out, err)
	}
	poll.Eventually(t, 30*time.Second, "n5 executes the write", func() bool {
		info := func(id string) *pbft.Answer { return infoWithDigest(ctx, c, id) }
		a, b := info("n5"), info("n1")
		return a.LastExecuted == b.LastExecuted && a.StateDigest != "" && a.StateDigest == b.StateDigest
	})
}

// infoWithDigest asks replica id for its info and state digest; an empty answer if it
// does not answer within half a second.
func infoWithDigest(ctx context.Context, c *client.Client, id string) *pbft.Answer {
	qctx, qcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer qcancel()
	a, err := c.Query(qctx, id, &pbft.Query{Op: pbft.OpInfo, Digest: true})
	if err != nil {
		return &pbft.Answer{}
	}
	return a
}
