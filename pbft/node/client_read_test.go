package node_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
)

// replyFilter lets a test play a replica that is slow or lies to one client: what the
// replica sends that client as replies passes through edit, which may change a reply or
// drop it (nil). It opens and seals again with the test's keys.
type replyFilter struct {
	bus.Transport
	mc   **memCluster // its keys; set once the cluster is built
	to   string
	mu   *sync.Mutex
	edit map[string]func(*pbft.Reply) *pbft.Reply // by replica id
}

func (f replyFilter) Send(to, kind string, data []byte) error {
	f.mu.Lock()
	edit := f.edit[f.ID()]
	f.mu.Unlock()
	if to != f.to || edit == nil || (kind != pbft.KindReply.String() && kind != pbft.KindReplies) {
		return f.Transport.Send(to, kind, data)
	}
	keys := (*f.mc).keys
	payload, err := keys[to].Open(f.ID(), kind, data)
	if err != nil {
		return err
	}
	var reps []*pbft.Reply
	if kind == pbft.KindReplies {
		reps, err = pbft.DecodeReplies(payload)
	} else {
		var m pbft.Message
		m, err = pbft.Unmarshal(payload)
		if err == nil {
			reps = []*pbft.Reply{m.(*pbft.Reply)}
		}
	}
	if err != nil {
		return err
	}
	var kept []*pbft.Reply
	for _, r := range reps {
		if r = edit(r); r != nil {
			kept = append(kept, r)
		}
	}
	switch {
	case len(kept) == 0:
		return nil
	case kind == pbft.KindReplies:
		payload = pbft.EncodeReplies(kept)
	default:
		payload = pbft.Marshal(kept[0])
	}
	return f.Transport.Send(to, kind, keys[f.ID()].Seal(to, kind, payload))
}

// filteredCluster runs four replicas whose replies to the client "reader" go through
// edits the test sets, and that client.
func filteredCluster(t *testing.T) (*memCluster, *client.Client, func(id string, edit func(*pbft.Reply) *pbft.Reply)) {
	var mu sync.Mutex
	edits := map[string]func(*pbft.Reply) *pbft.Reply{}
	var mc *memCluster
	mc = newMemCluster(t, nil, func(tr bus.Transport) bus.Transport {
		return replyFilter{Transport: tr, mc: &mc, to: "reader", mu: &mu, edit: edits}
	})
	mc.run()
	c, err := client.New(client.Config{Keys: mc.keys["reader"], Replicas: mc.ids, Timeout: time.Second,
		Retransmit: 50 * time.Millisecond,
		Connect:    func(h bus.Handler) (bus.Transport, error) { return mc.hub.Join("reader", bus.RoleClient, h) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	set := func(id string, edit func(*pbft.Reply) *pbft.Reply) {
		mu.Lock()
		defer mu.Unlock()
		edits[id] = edit
	}
	return mc, c, set
}

func drop(*pbft.Reply) *pbft.Reply { return nil }

// A write is accepted at q matching replies, not f+1: with two replicas' replies lost the
// request executes everywhere but the client does not accept it; with one lost it does.
func TestClientAcceptsWritesAtQ(t *testing.T) {
	_, c, set := filteredCluster(t)
	set("n3", drop)
	set("n4", drop)
	ctx := context.Background()
	res, err := c.Invoke(ctx, client.Request{Client: "c1", Timestamp: 1, Op: []byte("set x=1")})
	if !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("accepted with f+1 = 2 replies: %+v, %v", res, err)
	}
	set("n3", nil)
	res, err = c.Invoke(ctx, client.Request{Client: "c1", Timestamp: 2, Op: []byte("set x=2")})
	if err != nil || string(res.Value) != "OK" || res.Replies != 3 {
		t.Fatalf("with q = 3 replies: %+v, %v", res, err)
	}
}

// A read whose read-only replies do not reach q matching (one replica lies, another is
// slow) falls back to an ordered request, which gives the value; with the slow replica
// back, the read-only path gives it.
func TestClientReadFallsBackToOrdered(t *testing.T) {
	_, c, set := filteredCluster(t)
	ctx := context.Background()
	if _, err := c.Invoke(ctx, client.Request{Client: "c1", Timestamp: 1, Op: []byte("set x=1")}); err != nil {
		t.Fatal(err)
	}
	set("n3", func(r *pbft.Reply) *pbft.Reply {
		if r.ReadOnly {
			r.Result = []byte("stale")
		}
		return r
	})
	set("n4", func(r *pbft.Reply) *pbft.Reply {
		if r.ReadOnly {
			return nil
		}
		return r
	})
	res, ordered, err := c.Read(ctx, client.Request{Client: "c1", Timestamp: 2, Op: []byte("get x")})
	if err != nil || string(res.Value) != "1" || !ordered || res.Replies < 3 {
		t.Fatalf("read with a liar and a slow replica: %q (%d replies), ordered %v, %v", res.Value, res.Replies, ordered, err)
	}
	set("n4", nil)
	res, ordered, err = c.Read(ctx, client.Request{Client: "c1", Timestamp: 3, Op: []byte("get x")})
	if err != nil || string(res.Value) != "1" || ordered || res.Replies != 3 {
		t.Fatalf("read with a liar: %q (%d replies), ordered %v, %v", res.Value, res.Replies, ordered, err)
	}
	// A write sent as a read is refused by every replica and never ordered.
	res, _, err = c.Read(ctx, client.Request{Client: "c1", Timestamp: 4, Op: []byte("set x=2")})
	if err == nil && client.IsNotReadOnly(res, pbft.NewQuorum(4)) {
		return
	}
	t.Fatalf("a write sent as a read: %q, %v", res.Value, err)
}
