package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/kv"
	"github.com/pbft-nats/pbft/pbft/node"
)

// memCluster is n real replicas (pbft/node) r1..rn and a client "c" on the in-memory hub.
type memCluster struct {
	ids    []string
	nodes  map[string]*node.Node
	client *client.Client
}

// startCluster runs n replicas; adjust (if not nil) changes a replica's configuration.
func startCluster(t *testing.T, n int, timeout time.Duration, adjust func(*node.Config)) *memCluster {
	t.Helper()
	c := &memCluster{nodes: map[string]*node.Node{}}
	for i := range n {
		c.ids = append(c.ids, fmt.Sprintf("r%d", i+1))
	}
	keys, err := auth.GenerateKeyrings(append([]string{"c"}, c.ids...), c.ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	hub := bus.NewHub("test")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait(); hub.Close() })
	for _, id := range c.ids {
		cfg := node.Config{ID: id, NodeIDs: c.ids, Protocol: pbft.DefaultConfig(), Tick: 5 * time.Millisecond, Keys: keys[id], App: kv.New()}
		if adjust != nil {
			adjust(&cfg)
		}
		nd, err := node.New(cfg, func(h bus.Handler) (bus.Transport, error) { return hub.Join(id, bus.RoleReplica, h) })
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[id] = nd
		wg.Add(1)
		go func() { defer wg.Done(); _ = nd.Run(ctx) }()
	}
	c.client, err = client.New(client.Config{Keys: keys["c"], Replicas: c.ids, Timeout: timeout,
		Retransmit: client.RetransmitAfter(20 * 5 * time.Millisecond), // the default view-change timeout in ticks
		Connect:    func(h bus.Handler) (bus.Transport, error) { return hub.Join("c", bus.RoleClient, h) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.client.Close() })
	return c
}

// f = 2 of n = 7 replicas (the primary among them) reply "forged" to every request: f
// matching replies are not enough, and the client returns only the replicas' true
// results, each from a quorum.
func TestByzantineRepliesDoNotDecide(t *testing.T) {
	c := startCluster(t, 7, 10*time.Second, func(cfg *node.Config) {
		if cfg.ID == "r1" || cfg.ID == "r7" {
			cfg.ForgedResult = []byte("forged")
		}
	})
	ctx := context.Background()
	for i := range 10 {
		alice := fmt.Sprintf("alice%d", i)
		res, err := c.client.Invoke(ctx, client.Request{Client: alice, Timestamp: 1, Op: []byte(fmt.Sprintf("set k%d=v%d", i, i))})
		if err != nil || string(res.Value) != "OK" || res.Replies < 5 {
			t.Fatalf("set k%d: %+v, %v; want OK from a quorum of 5", i, res, err)
		}
		res, err = c.client.Invoke(ctx, client.Request{Client: alice, Timestamp: 2, Op: []byte(fmt.Sprintf("get k%d", i))})
		if err != nil || string(res.Value) != fmt.Sprintf("v%d", i) || res.Replies < 5 {
			t.Fatalf("get k%d: %+v, %v; want v%d from a quorum of 5", i, res, err, i)
		}
	}
	// Every replica's reply to the last get (from their reply caches): the two liars did
	// reply, and not with the five's result.
	r := client.Request{Client: "alice9", Timestamp: 2, Op: []byte("get k9")}
	set, ok := c.client.Watch(r.Client, r.Timestamp, r.Op)
	if !ok {
		t.Fatal("cannot watch the last get")
	}
	defer c.client.Unwatch(r.Client, r.Timestamp)
	best, err := c.client.Await(ctx, r, set, client.Settle{Need: c.ids})
	if err != nil || string(best.Value) != "v9" || best.Replies != 5 || best.From["r1"] || best.From["r7"] {
		t.Fatalf("all replies to get k9: best %+v, %v; want v9 from all but r1 and r7", best, err)
	}
}

// Many goroutines share one client, each with requests in flight at once.
func TestConcurrentPipelinedRequests(t *testing.T) {
	c := startCluster(t, 4, 10*time.Second, nil)
	const writers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		for k := range each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				op := fmt.Sprintf("set w%d-%d=%d", w, k, k)
				res, err := c.client.Invoke(context.Background(), client.Request{Client: fmt.Sprintf("w%d", w), Timestamp: uint64(k + 1), Op: []byte(op)})
				if err != nil || string(res.Value) != "OK" {
					errs <- fmt.Errorf("%s: %+v, %v", op, res, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range writers {
		for k := range each {
			op := fmt.Sprintf("get w%d-%d", w, k)
			res, err := c.client.Invoke(context.Background(), client.Request{Client: "reader", Timestamp: uint64(w*each + k + 1), Op: []byte(op)})
			if err != nil || string(res.Value) != fmt.Sprint(k) {
				t.Fatalf("%s: %+v, %v; want %d", op, res, err, k)
			}
		}
	}
}

// A request whose caller gives up returns at once, long before the client's timeout.
func TestCancelledRequestReturnsPromptly(t *testing.T) {
	s := newScripted(t, 4, time.Minute) // replicas that never answer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := s.client.Invoke(ctx, client.Request{Client: "alice", Timestamp: 1, Op: []byte("set x=1")})
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, client.ErrTimeout) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Invoke = %v, want ErrTimeout and context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Invoke still running %v after its context was cancelled", time.Since(start))
	}
}

// The primary crashes: the client's retransmissions make the backups change view, it
// gets its result from the new view and sends the next request to the new primary.
func TestViewChangeIsFollowed(t *testing.T) {
	c := startCluster(t, 4, 20*time.Second, nil)
	ctx := context.Background()
	if res, err := c.client.Invoke(ctx, client.Request{Client: "alice", Timestamp: 1, Op: []byte("set x=1")}); err != nil || res.View != 0 {
		t.Fatalf("before the crash: %+v, %v; want OK in view 0", res, err)
	}
	c.nodes["r1"].SetFault(node.FaultCrash)
	res, err := c.client.Invoke(ctx, client.Request{Client: "alice", Timestamp: 2, Op: []byte("set x=2")})
	if err != nil || string(res.Value) != "OK" || res.View == 0 {
		t.Fatalf("after the crash: %+v, %v; want OK in a later view", res, err)
	}
	if p := c.client.Primary(); p == "r1" {
		t.Fatalf("client still takes r1 for the primary after view %d", res.View)
	}
	res, err = c.client.Invoke(ctx, client.Request{Client: "alice", Timestamp: 3, Op: []byte("get x")})
	if err != nil || string(res.Value) != "2" {
		t.Fatalf("get x in the new view: %+v, %v; want 2", res, err)
	}
}
