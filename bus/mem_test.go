package bus

import (
	"errors"
	"sync/atomic"
	"testing"
)

func memCluster(t *testing.T) joinFunc {
	h := NewHub("test")
	t.Cleanup(h.Close)
	return func(id string, role Role, handler Handler) (Transport, error) {
		tr, err := h.Join(id, role, handler)
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return tr, nil
	}
}

func TestMemConformance(t *testing.T) { runConformance(t, memCluster) }

func TestMemJoin(t *testing.T) {
	h := NewHub("test")
	defer h.Close()
	nop := func(Message) {}
	a, err := h.Join("a", RoleReplica, nop)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Join("a", RoleClient, nop); err == nil {
		t.Fatal("duplicate id joined")
	}
	// A closed endpoint's id is free again: a restarted replica rejoins.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Join("a", RoleReplica, nop); err != nil {
		t.Fatalf("rejoin after Close: %v", err)
	}
	if _, err := NewHub("bad.cluster").Join("a", RoleReplica, nop); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("join to invalid cluster: %v", err)
	}
}

func TestMemHubClose(t *testing.T) {
	h := NewHub("test")
	r := &recorder{t: t, id: "a", changed: make(chan struct{})}
	a, err := h.Join("a", RoleReplica, r.handle)
	if err != nil {
		t.Fatal(err)
	}
	r.tr = a
	b, err := h.Join("b", RoleClient, func(Message) {})
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	r.closeReturn.Store(true)
	for _, tr := range []Transport{a, b} {
		if err := tr.Send("a", "x", nil); !errors.Is(err, ErrClosed) {
			t.Errorf("%s: Send after Hub.Close = %v", tr.ID(), err)
		}
	}
	if _, err := h.Join("c", RoleReplica, func(Message) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Hub.Close = %v, want ErrClosed", err)
	}
	h.Close() // idempotent
}

// The filter drops copies at send time, per recipient, and the sender
// counts them.
func TestMemFilter(t *testing.T) {
	c := newTestCluster(t, memCluster, nil)
	n1, n2, n3, n4 := c.replicas[0], c.replicas[1], c.replicas[2], c.replicas[3]
	hub := n1.tr.(*MemTransport).hub
	var asked atomic.Int32
	hub.SetFilter(func(from, to, kind string) bool {
		asked.Add(1)
		return !(kind == "prepare" && to == "n3") && !(from == "n2" && kind == "commit")
	})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(n1.tr.Broadcast("prepare", nil)) // n3's copy dropped
	must(n2.tr.Send("n4", "commit", nil)) // dropped
	must(n2.tr.Send("n4", "other", nil))  // delivered
	hub.SetFilter(nil)
	must(n1.tr.Send("n3", "prepare", nil)) // no filter any more
	n4.waitFor("other", func() bool { return len(filterKind(n4.msgs, "other")) == 1 })
	n3.waitFor("prepare", func() bool { return len(filterKind(n3.msgs, "prepare")) == 1 })
	c.settle(n1, n2)
	if got := len(n2.received("prepare")) + len(n4.received("prepare")); got != 2 {
		t.Errorf("n2+n4 got %d prepares, want 2", got)
	}
	if got := len(n4.received("commit")); got != 0 {
		t.Errorf("n4 got %d filtered commits", got)
	}
	if got := asked.Load(); got != 5 {
		t.Errorf("filter asked %d times, want 5 (3 broadcast copies + 2 sends)", got)
	}
	if s := stats(t, n1.tr); s.Dropped != 1 {
		t.Errorf("n1 stats %+v, want Dropped 1", s)
	}
	if s := stats(t, n2.tr); s.Dropped != 1 {
		t.Errorf("n2 stats %+v, want Dropped 1", s)
	}
}

func TestMemUnknownReceiverCounted(t *testing.T) {
	h := NewHub("test")
	defer h.Close()
	a, err := h.Join("a", RoleReplica, func(Message) {})
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"nobody", "a"} {
		if err := a.Send(to, "x", []byte("y")); err != nil {
			t.Fatal(err)
		}
	}
	if s := a.Stats(); s != (Stats{Sent: 2, Dropped: 2}) {
		t.Fatalf("stats %+v, want Sent 2 Dropped 2", s)
	}
}
