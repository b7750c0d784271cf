package node

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/kv"
)

// sinkTransport keeps a copy of what it is given only while keep is set, as a transport
// must not keep the caller's buffer. Its id is "n1" unless set; mu guards sent for a
// test that reads it while the node runs (kindsTo).
type sinkTransport struct {
	id   string
	keep bool
	mu   sync.Mutex
	sent []sent
}

type sent struct {
	to, kind string
	data     []byte
}

func (s *sinkTransport) ID() string {
	if s.id == "" {
		return "n1"
	}
	return s.id
}

func (s *sinkTransport) Send(to, kind string, data []byte) error {
	if s.keep {
		s.mu.Lock()
		s.sent = append(s.sent, sent{to, kind, bytes.Clone(data)})
		s.mu.Unlock()
	}
	return nil
}

// kindsTo lists, in order, the kinds of what was sent to to.
func (s *sinkTransport) kindsTo(to string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var kinds []string
	for _, m := range s.sent {
		if m.to == to {
			kinds = append(kinds, m.kind)
		}
	}
	return kinds
}
func (s *sinkTransport) Broadcast(kind string, data []byte) error { return s.Send("", kind, data) }
func (s *sinkTransport) Close() error                             { return nil }

// newSinkNode is node n1 of four whose transport is a sinkTransport keeping what it is
// given, with the keyrings of the four replicas and of a gateway "gw".
func newSinkNode(t *testing.T) (*Node, *sinkTransport, map[string]*auth.Keyring) {
	return newSinkNodeAs(t, "n1", "")
}

// newSinkNodeAs is newSinkNode as replica id, with its durable log in dataDir ("": none).
func newSinkNodeAs(t *testing.T, id, dataDir string) (*Node, *sinkTransport, map[string]*auth.Keyring) {
	t.Helper()
	ids := []string{"n1", "n2", "n3", "n4"}
	keys, err := auth.GenerateKeyrings(append([]string{"gw"}, ids...), ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	sink := &sinkTransport{id: id, keep: true}
	n, err := New(Config{ID: id, NodeIDs: ids, Protocol: pbft.DefaultConfig(), Tick: time.Second, Keys: keys[id], App: kv.New(), DataDir: dataDir},
		func(bus.Handler) (bus.Transport, error) { return sink, nil })
	if err != nil {
		t.Fatal(err)
	}
	return n, sink, keys
}

// TestSendReusesBuffers: what the node sends opens at its receiver as the message it
// meant, one message after another through the same buffers, and once the buffers have
// grown a prepare, a commit broadcast and a reply cost no allocation in the send path
// (each used to allocate its encoding and its envelope).
func TestSendReusesBuffers(t *testing.T) {
	n, sink, keys := newSinkNode(t)
	outs := []pbft.Outbound{
		{To: 1, Msg: &pbft.Prepare{View: 0, Seq: 1, Digest: pbft.Digest{1}, Replica: 0}},
		{To: pbft.Broadcast, Msg: &pbft.Commit{View: 0, Seq: 1, Digest: pbft.Digest{2}, Replica: 0}},
		{To: pbft.ToGateway, Gateway: "gw", Msg: &pbft.Reply{View: 0, Seq: 1, Client: "c", Timestamp: 7, Replica: 0, Result: []byte("ok")}},
	}
	for _, o := range outs {
		n.sendOut(o, FaultNone)
	}
	if len(sink.sent) != len(outs) {
		t.Fatalf("%d messages sent, want %d", len(sink.sent), len(outs))
	}
	for i, s := range sink.sent {
		receiver := s.to
		if receiver == "" {
			receiver = "n3"
		}
		payload, err := keys[receiver].Open("n1", s.kind, s.data)
		if err != nil {
			t.Fatalf("message %d: %s cannot open it: %v", i, receiver, err)
		}
		want := pbft.Marshal(outs[i].Msg)
		if outs[i].To != pbft.ToGateway {
			want = frame(0, want) // replica-to-replica messages carry their configuration
		}
		if !bytes.Equal(payload, want) {
			t.Errorf("message %d: payload %x, want %x", i, payload, want)
		}
	}
	if raceEnabled {
		return // the race detector drops the keyring's pooled HMACs at random
	}
	sink.keep = false
	for i, o := range outs {
		if a := testing.AllocsPerRun(100, func() { n.sendOut(o, FaultNone) }); a != 0 {
			t.Errorf("message %d (%s): %v allocations per send, want 0", i, o.Msg.Kind(), a)
		}
	}
}
