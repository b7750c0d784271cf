package client_test

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

// A client follows reconfigurations another client (the administrator) made. Told r1..r4
// and tagging for them only, it learns configuration 1 (r1..r5, r5 joined) from an
// answer that shows it, adds r5's key, and its next request counts r5's reply too. After
// the administrator removes r1 (the primary it sends to), its next request shows
// configuration 2 in the replies: it is executed once and answered by the members of
// configuration 2 only.
func TestClientFollowsAnotherClientsReconfigurations(t *testing.T) {
	ids := []string{"r1", "r2", "r3", "r4", "r5"}
	four := ids[:4]
	keys, err := auth.GenerateKeyrings(append([]string{"c", "admin"}, ids...), four, 1)
	if err != nil {
		t.Fatal(err)
	}
	hub := bus.NewHub("test")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait(); hub.Close() })
	for _, id := range ids {
		cfg := node.Config{ID: id, NodeIDs: four, Protocol: pbft.DefaultConfig(), Tick: 5 * time.Millisecond, Keys: keys[id], App: kv.New()}
		cfg.Protocol.Admin = "admin"
		if id == "r5" {
			cfg.NodeIDs, cfg.Join = ids, true
		}
		nd, err := node.New(cfg, func(h bus.Handler) (bus.Transport, error) { return hub.Join(id, bus.RoleReplica, h) })
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = nd.Run(ctx) }()
	}
	newClient := func(id string) *client.Client {
		c, err := client.New(client.Config{Keys: keys[id], Replicas: four, Timeout: 10 * time.Second,
			Retransmit: client.RetransmitAfter(100 * time.Millisecond),
			Connect:    func(h bus.Handler) (bus.Transport, error) { return hub.Join(id, bus.RoleClient, h) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c, admin := newClient("c"), newClient("admin")

	// execute is what a gateway does: the result at a quorum, then a grace for the
	// members of the configuration the client follows by then.
	execute := func(ts uint64, op string) client.Result {
		t.Helper()
		r := client.Request{Client: "alice", Timestamp: ts, Op: []byte(op)}
		set, ok := c.Watch(r.Client, r.Timestamp, r.Op)
		if !ok {
			t.Fatalf("cannot watch %s", op)
		}
		defer c.Unwatch(r.Client, r.Timestamp)
		if _, err := c.Invoke(context.Background(), r); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		best, err := c.Await(context.Background(), r, set, client.Settle{LateMembers: true, Grace: 2 * time.Second})
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		return best
	}
	from := func(r client.Result) []string {
		var out []string
		for id := range r.From {
			out = append(out, id)
		}
		slices.Sort(out)
		return out
	}

	if r := execute(1, "set x=1"); r.Replies != 4 || r.Conf != 0 {
		t.Fatalf("before any reconfiguration: %+v", r)
	}
	if _, err := admin.Reconfigure(context.Background(), client.Request{Client: "admin", Timestamp: 1}, ids); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(context.Background(), "r2", &pbft.Query{Op: pbft.OpInfo}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "the client following configuration 1", func() bool {
		conf, members := c.Configuration()
		return conf == 1 && slices.Equal(members, ids)
	})
	r := execute(2, "set y=2")
	if r.Conf != 1 || r.Replies != 5 || string(r.Value) != "OK" {
		t.Fatalf("the first request after the grow: %+v from %v; want OK from the 5 members of configuration 1", r, from(r))
	}

	rest := ids[1:]
	if _, err := admin.Reconfigure(context.Background(), client.Request{Client: "admin", Timestamp: 2}, rest); err != nil {
		t.Fatal(err)
	}
	r = execute(3, "get y")
	if r.Conf != 2 || r.Replies != 4 || string(r.Value) != "2" || !slices.Equal(from(r), rest) {
		t.Fatalf("the first request after r1 left: %+v from %v; want 2 from %v", r, from(r), rest)
	}
	if conf, members := c.Configuration(); conf != 2 || !slices.Equal(members, rest) {
		t.Fatalf("the client follows configuration %d %v after r1 left", conf, members)
	}
	if r := execute(4, "get x"); string(r.Value) != "1" || r.Replies != 4 {
		t.Fatalf("get x: %+v", r)
	}
}
