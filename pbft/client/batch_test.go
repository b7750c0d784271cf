package client_test

import (
	"context"
	"fmt"
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

// gatedTransport holds the first send after arm until the test closes the gate, and
// records the kind of every send ("broadcast <kind>" for a broadcast).
type gatedTransport struct {
	bus.Transport
	mu    sync.Mutex
	gate  chan struct{} // nil: sends pass
	held  chan struct{} // closed once a send waits at the gate
	kinds []string
}

func (g *gatedTransport) wait(kind string) {
	g.mu.Lock()
	gate, held := g.gate, g.held
	g.gate = nil
	g.kinds = append(g.kinds, kind)
	g.mu.Unlock()
	if gate != nil {
		close(held)
		<-gate
	}
}

func (g *gatedTransport) Send(to, kind string, data []byte) error {
	g.wait(kind)
	return g.Transport.Send(to, kind, data)
}

func (g *gatedTransport) Broadcast(kind string, data []byte) error {
	g.wait("broadcast " + kind)
	return g.Transport.Broadcast(kind, data)
}

func (g *gatedTransport) arm() (gate, held chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate, g.held, g.kinds = make(chan struct{}), make(chan struct{}), nil
	return g.gate, g.held
}

// Reads that arrive while the client is sending go out together: with one read's send
// held, 8 more reads queue, and once it is let go they reach every replica as one batch
// (one bus message to all of them, 8 requests), and every read is answered on the
// read-only path. Even the lone read goes as a batch (of one) to every replica at once.
func TestConcurrentReadsAreBatched(t *testing.T) {
	ids := []string{"r1", "r2", "r3", "r4"}
	keys, err := auth.GenerateKeyrings(append([]string{"c"}, ids...), ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	hub := bus.NewHub("test")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait(); hub.Close() })
	nodes := map[string]*node.Node{}
	for _, id := range ids {
		cfg := node.Config{ID: id, NodeIDs: ids, Protocol: pbft.DefaultConfig(), Tick: 5 * time.Millisecond, Keys: keys[id], App: kv.New()}
		nd, err := node.New(cfg, func(h bus.Handler) (bus.Transport, error) { return hub.Join(id, bus.RoleReplica, h) })
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = nd
		wg.Add(1)
		go func() { defer wg.Done(); _ = nd.Run(ctx) }()
	}
	gated := &gatedTransport{}
	c, err := client.New(client.Config{Keys: keys["c"], Replicas: ids, Timeout: 10 * time.Second, Retransmit: time.Second,
		Connect: func(h bus.Handler) (bus.Transport, error) {
			tr, err := hub.Join("c", bus.RoleClient, h)
			gated.Transport = tr
			return gated, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if res, err := c.Invoke(ctx, client.Request{Client: "w", Timestamp: 1, Op: []byte("set x=1")}); err != nil || string(res.Value) != "OK" {
		t.Fatalf("set x=1: %+v %v", res, err)
	}

	gate, held := gated.arm()
	const queued = 8
	type outcome struct {
		res     client.Result
		ordered bool
		err     error
	}
	out := make(chan outcome, queued+1)
	read := func(i int) {
		res, ordered, err := c.Read(ctx, client.Request{Client: fmt.Sprintf("c%d", i), Timestamp: 1, Op: []byte("get x")})
		out <- outcome{res, ordered, err}
	}
	go read(0)
	<-held // read 0 is being sent, alone
	for i := 1; i <= queued; i++ {
		go read(i)
	}
	poll.Eventually(t, 5*time.Second, "8 reads queued behind the one being sent", func() bool { return c.Queued("") == queued })
	close(gate)
	for range queued + 1 {
		o := <-out
		if o.err != nil || o.ordered || string(o.res.Value) != "1" || o.res.Replies < 3 {
			t.Fatalf("read: %+v ordered=%v %v; want 1 from the read-only path", o.res, o.ordered, o.err)
		}
	}
	gated.mu.Lock()
	kinds := gated.kinds
	gated.mu.Unlock()
	want := []string{"broadcast " + pbft.KindRequests, "broadcast " + pbft.KindRequests}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("sent %q, want the lone read then the batch, each one message to every replica %q", kinds, want)
	}
	for _, id := range ids {
		want := queued + 1 // the lone read and the batch's
		if id == "r1" {
			want++ // the write, sent to the primary only
		}
		poll.Eventually(t, 5*time.Second, id+" stepping every read", func() bool { return nodes[id].Stats().In["request"] >= uint64(want) })
		if st := nodes[id].Stats(); st.In[pbft.KindRequests] != 2 || st.In["request"] != uint64(want) {
			t.Fatalf("%s stepped %v; want 2 batches (the lone read's and the others') and %d requests", id, st.In, want)
		}
	}
}
