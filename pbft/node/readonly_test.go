package node_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/kv"
	"github.com/pbft-nats/pbft/pbft/node"
)

// reader is a bare client on the bus that keeps every reply it gets.
type reader struct {
	mu      sync.Mutex
	replies map[uint64]map[string]*pbft.Reply // by timestamp, then replica id
	tr      bus.Transport
}

func newReader(t *testing.T, mc *memCluster) *reader {
	rd := &reader{replies: map[uint64]map[string]*pbft.Reply{}}
	keys := mc.keys["reader"]
	tr, err := mc.hub.Join("reader", bus.RoleClient, func(m bus.Message) {
		data, err := keys.Open(m.From, m.Kind, m.Data)
		if err != nil {
			return
		}
		var reps []*pbft.Reply
		switch m.Kind {
		case node.KindReplies:
			reps, _ = node.DecodeReplies(data)
		case pbft.KindReply.String():
			if msg, err := pbft.Unmarshal(data); err == nil {
				reps = []*pbft.Reply{msg.(*pbft.Reply)}
			}
		}
		rd.mu.Lock()
		defer rd.mu.Unlock()
		for _, r := range reps {
			if rd.replies[r.Timestamp] == nil {
				rd.replies[r.Timestamp] = map[string]*pbft.Reply{}
			}
			rd.replies[r.Timestamp][m.From] = r
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	rd.tr = tr
	t.Cleanup(func() { tr.Close() })
	return rd
}

func (rd *reader) got(ts uint64) map[string]*pbft.Reply {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	out := map[string]*pbft.Reply{}
	for k, v := range rd.replies[ts] {
		out[k] = v
	}
	return out
}

// Read-only requests over the bus: every replica answers a get at once, flagged
// read-only; a write flagged read-only is refused and counted; a request whose flag was
// flipped after the client authenticated it fails authentication either way.
func TestReadOnlyRequestsOverMemoryTransport(t *testing.T) {
	mc := newMemCluster(t, nil, nil)
	mc.run()
	rd := newReader(t, mc)
	keys := mc.keys["reader"]
	sign := func(ts uint64, op string, readOnly bool) *pbft.Request {
		req := &pbft.Request{Gateway: "reader", Client: "c1", Timestamp: ts, Op: []byte(op), ReadOnly: readOnly}
		req.Auth = keys.RequestTags(pbft.RequestDigest(req))
		return req
	}
	send := func(req *pbft.Request) {
		t.Helper()
		if err := rd.tr.Broadcast("request", keys.Seal("", "request", pbft.Marshal(req))); err != nil {
			t.Fatal(err)
		}
	}
	everyReplica := func(ts uint64) map[string]*pbft.Reply {
		t.Helper()
		poll.Eventually(t, 5*time.Second, "a reply from every replica", func() bool { return len(rd.got(ts)) == len(mc.ids) })
		return rd.got(ts)
	}
	send(sign(1, "set x=1", false))
	for id, rep := range everyReplica(1) {
		if rep.ReadOnly || string(rep.Result) != "OK" || rep.Seq != 1 {
			t.Fatalf("%s answered the write with %+v", id, rep)
		}
	}

	send(sign(2, "get x", true))
	for id, rep := range everyReplica(2) {
		if !rep.ReadOnly || string(rep.Result) != "1" || rep.View != 0 || rep.Seq != 1 {
			t.Fatalf("%s answered the read with %+v", id, rep)
		}
	}
	send(sign(3, "set x=2", true))
	for id, rep := range everyReplica(3) {
		if !rep.ReadOnly || string(rep.Result) != pbft.NotReadOnlyResult {
			t.Fatalf("%s answered a write flagged read-only with %+v", id, rep)
		}
	}
	for _, id := range mc.ids {
		if got := mc.nodes[id].Stats().Rejected[node.RejectNotReadOnly]; got != 1 {
			t.Fatalf("%s counted %d refused read-only requests, want 1", id, got)
		}
	}

	// An attacker flips the flag of authenticated requests: a write made unordered, a read
	// made ordered. Both fail authentication at every replica.
	flipped := sign(4, "set x=3", false)
	flipped.ReadOnly = true
	send(flipped)
	flipped = sign(5, "get x", true)
	flipped.ReadOnly = false
	send(flipped)
	poll.Eventually(t, 5*time.Second, "both flipped requests refused as bad MACs", func() bool {
		for _, id := range mc.ids {
			if mc.nodes[id].Stats().Rejected[node.RejectBadMAC] < 2 {
				return false
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, id := range mc.ids {
		a, err := mc.client.Query(ctx, id, &node.Query{Op: node.OpInfo, WaitMillis: 1})
		if err != nil || a.LastExecuted != 1 {
			t.Fatalf("%s: something executed after the write: %+v %v", id, a, err)
		}
	}
	if n := len(rd.got(4)) + len(rd.got(5)); n != 0 {
		t.Fatalf("%d replies to the flipped requests", n)
	}

	// A read-only request submitted as a query is stepped at once, not waited for.
	c := mc.client
	q := &pbft.Request{Gateway: "gw", Client: "c1", Timestamp: 6, Op: []byte("get x"), ReadOnly: true}
	q.Auth = mc.keys["gw"].RequestTags(pbft.RequestDigest(q))
	set, _ := c.Watch("c1", 6, q.Op)
	defer c.Unwatch("c1", 6)
	sa, err := c.Query(ctx, "n2", &node.Query{Op: node.OpSubmit, Request: pbft.Marshal(q), WaitMillis: 4000})
	if err != nil || sa.Ordered || sa.TimedOut || sa.Error != "" {
		t.Fatalf("read-only submit: %+v %v", sa, err)
	}
	poll.Eventually(t, 5*time.Second, "n2's read-only reply", func() bool {
		best, all := set.ReadOnlyBest()
		return all["n2"] && string(best.Value) == "1"
	})
}

func TestStoreClassesOnlyGetAsReadOnly(t *testing.T) {
	s := kv.New()
	s.Execute([]byte("set x=1"))
	for op, want := range map[string]bool{"get x": true, "get": true, "get ": true, "set x=1": false, "del x": false,
		"getx": false, "": false, "GET x": false} {
		before := s.Digest()
		if got := s.IsReadOnly([]byte(op)); got != want {
			t.Errorf("IsReadOnly(%q) = %v, want %v", op, got, want)
		}
		if want {
			s.Execute([]byte(op))
			if s.Digest() != before {
				t.Errorf("Execute(%q) changed the store", op)
			}
		}
	}
}
