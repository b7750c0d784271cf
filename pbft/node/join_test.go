package node_test

import (
	"context"
	"os"
	"path/filepath"
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

// A replica started with Join waits until the administrator's reconfiguration admits
// it. The old members' keys directory lacks the joiner's public key at first: they
// execute the reconfiguration but cannot authenticate the joiner, so it does not get in;
// once the operator adds <id>.pub there, they read it (keysync.go) and it joins.
func TestJoinerWaitsForTheKeyOfItsMembershipToReachTheOldMembers(t *testing.T) {
	old, next := []string{"n1", "n2", "n3", "n4"}, []string{"n1", "n2", "n3", "n4", "n5"}
	oldDir, newDir := t.TempDir(), t.TempDir()
	for _, id := range append(slices.Clone(next), "admin") {
		if err := auth.WriteKeyPair(newDir, id); err != nil {
			t.Fatal(err)
		}
		if id == "n5" {
			continue // not yet where the old members read their keys
		}
		for _, f := range []string{id + ".pub", id + ".key"} {
			b, err := os.ReadFile(filepath.Join(newDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(oldDir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	hub := bus.NewHub("test")
	defer hub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	start := func(id, dir string, ids []string, join bool) { startFromDir(ctx, t, &wg, hub, id, dir, ids, join) }
	for _, id := range old {
		start(id, oldDir, old, false)
	}
	start("n5", newDir, next, true)

	c := clientFromDir(t, hub, "admin", newDir, old)
	member := func(id string) bool {
		qctx, qcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer qcancel()
		a, err := c.Query(qctx, id, &pbft.Query{Op: pbft.OpInfo})
		return err == nil && a.Configuration == 1 && !a.NotMember
	}
	if member("n5") {
		t.Fatal("n5 is a member before any reconfiguration")
	}
	res, err := c.Reconfigure(ctx, client.Request{Client: "admin", Timestamp: 1}, next)
	if err != nil {
		t.Fatal(err)
	}
	if res.Membership.Conf != 1 || !slices.Equal(res.Membership.Members, next) || slices.Contains(res.Installed, "n5") {
		t.Fatalf("reconfiguration %+v: want configuration 1 without n5 running it", res)
	}
	if member("n5") {
		t.Fatal("n5 joined although the old members cannot authenticate it")
	}
	b, err := os.ReadFile(filepath.Join(newDir, "n5.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(oldDir, "n5.pub"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 20*time.Second, "n5 a member of configuration 1", func() bool { return member("n5") })
	out, err := c.Invoke(ctx, client.Request{Client: "c", Timestamp: 1, Op: []byte("set x=1")})
	if err != nil || string(out.Value) != "OK" || out.Conf != 1 {
		t.Fatalf("a write after n5 joined: %+v, %v", out, err)
	}
}

// startFromDir runs replica id of ids (a joiner if join) with its keys from dir, the
// administrator "admin", until ctx ends.
func startFromDir(ctx context.Context, t *testing.T, wg *sync.WaitGroup, hub *bus.Hub, id, dir string, ids []string, join bool) {
	t.Helper()
	keys, err := auth.LoadKeyring(dir, id, ids, uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	p := pbft.DefaultConfig()
	p.Admin = "admin"
	n, err := node.New(node.Config{ID: id, NodeIDs: ids, Protocol: p, Tick: 5 * time.Millisecond, Keys: keys, App: kv.New(), Join: join},
		func(h bus.Handler) (bus.Transport, error) { return hub.Join(id, bus.RoleReplica, h) })
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = n.Run(ctx) }()
}

// clientFromDir is client id of the replicas ids, with its keys from dir.
func clientFromDir(t *testing.T, hub *bus.Hub, id, dir string, ids []string) *client.Client {
	t.Helper()
	keys, err := auth.LoadKeyring(dir, id, ids, uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Keys: keys, Replicas: ids, Timeout: 2 * time.Second, Retransmit: 50 * time.Millisecond,
		Connect: func(h bus.Handler) (bus.Transport, error) { return hub.Join(id, bus.RoleClient, h) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A client that still follows the four replicas it was given, after the administrator
// grew them to five, counts no reply of the new configuration in the old quorum: it
// learns the configuration in force from the replicas and accepts its write at the new
// quorum (4 of 5, not 3).
func TestStaleClientFollowsANewerConfiguration(t *testing.T) {
	old, next := []string{"n1", "n2", "n3", "n4"}, []string{"n1", "n2", "n3", "n4", "n5"}
	dir := t.TempDir()
	for _, id := range append(slices.Clone(next), "admin", "gw") {
		if err := auth.WriteKeyPair(dir, id); err != nil {
			t.Fatal(err)
		}
	}
	hub := bus.NewHub("test")
	defer hub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, id := range old {
		startFromDir(ctx, t, &wg, hub, id, dir, old, false)
	}
	startFromDir(ctx, t, &wg, hub, "n5", dir, next, true)
	stale := clientFromDir(t, hub, "gw", dir, old)
	if _, err := stale.Invoke(ctx, client.Request{Client: "c", Timestamp: 1, Op: []byte("set x=1")}); err != nil {
		t.Fatal(err)
	}
	admin := clientFromDir(t, hub, "admin", dir, old)
	if res, err := admin.Reconfigure(ctx, client.Request{Client: "admin", Timestamp: 1}, next); err != nil || len(res.Installed) != 5 {
		t.Fatalf("reconfiguration: %+v, %v", res, err)
	}
	res, err := stale.Invoke(ctx, client.Request{Client: "c", Timestamp: 2, Op: []byte("set x=2")})
	if err != nil {
		t.Fatal(err)
	}
	conf, ids := stale.Configuration()
	if res.Conf != 1 || res.Replies < 4 || conf != 1 || !slices.Equal(ids, next) || stale.Accept() != 4 {
		t.Fatalf("the stale client accepted %+v and follows configuration %d %q (accept %d)", res, conf, ids, stale.Accept())
	}
}
