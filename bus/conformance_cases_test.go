package bus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testBroadcast(t *testing.T, f clusterFactory) {
	c := newTestCluster(t, f, nil)
	n1, cl := c.replicas[0], c.client
	if err := n1.tr.Broadcast("prepare", []byte("from n1")); err != nil {
		t.Fatal(err)
	}
	if err := cl.tr.Broadcast("request", []byte("from c1")); err != nil {
		t.Fatal(err)
	}
	c.settle(n1, cl)
	for _, r := range c.all() {
		for _, want := range []struct {
			kind, from string
			n          int
		}{
			// A replica gets the other's broadcast; nobody gets their own;
			// the client gets no broadcast at all.
			{"prepare", "n1", boolInt(r.id != "n1" && r.id != "c1")},
			{"request", "c1", boolInt(r.id != "c1")},
		} {
			got := r.received(want.kind)
			if len(got) != want.n {
				t.Errorf("%s got %d %s, want %d", r.id, len(got), want.kind, want.n)
				continue
			}
			for _, m := range got {
				if m.From != want.from || string(m.Data) != "from "+want.from {
					t.Errorf("%s got %+v", r.id, m)
				}
			}
		}
	}
	if s := stats(t, n1.tr); s.Sent < 1 {
		t.Errorf("n1 stats %+v: broadcast not counted", s)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func testSend(t *testing.T, f clusterFactory) {
	c := newTestCluster(t, f, nil)
	n1, n3, n4, cl := c.replicas[0], c.replicas[2], c.replicas[3], c.client
	send := func(from *recorder, to, kind string) {
		t.Helper()
		if err := from.tr.Send(to, kind, []byte(from.id+">"+to)); err != nil {
			t.Fatalf("%s.Send(%s): %v", from.id, to, err)
		}
	}
	send(n1, "n3", "x")     // replica to replica
	send(n1, "c1", "x")     // replica to client
	send(cl, "n2", "x")     // client to replica
	send(n4, "nobody", "x") // unknown: dropped silently
	send(n4, "n4", "x")     // oneself: dropped silently
	c.settle(n1, cl, n4)
	want := map[string]string{"n3": "n1>n3", "c1": "n1>c1", "n2": "c1>n2"}
	for _, r := range c.all() {
		got := r.received("x")
		if w, ok := want[r.id]; ok {
			if len(got) != 1 || string(got[0].Data) != w {
				t.Errorf("%s got %v, want one %q", r.id, got, w)
			}
		} else if len(got) != 0 {
			t.Errorf("%s got %v, want nothing", r.id, got)
		}
	}
	if s := stats(t, n3.tr); s.Received < 1 {
		t.Errorf("n3 stats %+v: delivery not counted", s)
	}
}

// testFIFO: n1, n2 and c1 send 1000 numbered messages each to n3 at the
// same time; n1 alternates point-to-point ("seq") and broadcast ("seqb")
// with separate numbering, as order is promised per path.
func testFIFO(t *testing.T, f clusterFactory) {
	const perSender = 1000
	c := newTestCluster(t, f, nil)
	n1, n2, n3, cl := c.replicas[0], c.replicas[1], c.replicas[2], c.client
	var wg sync.WaitGroup
	for _, s := range []*recorder{n1, n2, cl} {
		wg.Go(func() {
			for i := range perSender {
				var err error
				if s == n1 {
					// Even i to n3 directly as #i/2, odd i broadcast as #i/2.
					data := binary.BigEndian.AppendUint64(nil, uint64(i/2))
					if i%2 == 1 {
						err = s.tr.Broadcast("seqb", data)
					} else {
						err = s.tr.Send("n3", "seq", data)
					}
				} else {
					err = s.tr.Send("n3", "seq", binary.BigEndian.AppendUint64(nil, uint64(i)))
				}
				if err != nil {
					t.Errorf("%s: %v", s.id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	n3.waitFor("all sequenced messages", func() bool {
		return len(filterKind(n3.msgs, "seq"))+len(filterKind(n3.msgs, "seqb")) == 3*perSender
	})
	next := map[string]uint64{}
	n3.mu.Lock()
	msgs := n3.msgs
	n3.mu.Unlock()
	for _, m := range msgs {
		if m.Kind != "seq" && m.Kind != "seqb" {
			continue
		}
		path := m.From + "/" + m.Kind
		if got := binary.BigEndian.Uint64(m.Data); got != next[path] {
			t.Fatalf("%s: got #%d, want #%d", path, got, next[path])
		}
		next[path]++
	}
	if want := (map[string]uint64{"n1/seq": perSender / 2, "n1/seqb": perSender / 2, "n2/seq": perSender, "c1/seq": perSender}); !maps.Equal(next, want) {
		t.Errorf("counts per path %v, want %v", next, want)
	}
	if s := stats(t, n1.tr); s.Sent != perSender {
		t.Errorf("n1 Sent = %d, want %d", s.Sent, perSender)
	}
}

// testSerialised floods n4 from everyone, on both of its subscriptions; the
// recorder fails the test if two handler calls overlap.
func testSerialised(t *testing.T, f clusterFactory) {
	const perSender = 300
	c := newTestCluster(t, f, nil)
	n4 := c.replicas[3]
	senders := []*recorder{c.replicas[0], c.replicas[1], c.replicas[2], c.client}
	var wg sync.WaitGroup
	for k, s := range senders {
		wg.Go(func() {
			for i := range perSender {
				var err error
				if k%2 == 0 && i%2 == 0 {
					err = s.tr.Broadcast("flood", nil)
				} else {
					err = s.tr.Send("n4", "flood", nil)
				}
				if err != nil {
					t.Errorf("%s: %v", s.id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	n4.waitFor("the flood", func() bool { return len(filterKind(n4.msgs, "flood")) == len(senders)*perSender })
	if s := stats(t, n4.tr); s.Received < uint64(len(senders)*perSender) {
		t.Errorf("n4 Received = %d, want >= %d", s.Received, len(senders)*perSender)
	}
}

// testSendFromHandler plays many rallies between n1 and n2 at once; every
// hop is sent from inside a handler, with a broadcast on the side.
func testSendFromHandler(t *testing.T, f clusterFactory) {
	const balls, hops = 20, 100
	var finished atomic.Int32
	allDone := make(chan struct{})
	hop := func(self Transport, m Message) {
		if m.Kind != "hop" {
			return
		}
		n := binary.BigEndian.Uint64(m.Data[8:])
		if n == hops {
			if finished.Add(1) == balls {
				close(allDone)
			}
			return
		}
		data := binary.BigEndian.AppendUint64(m.Data[:8:8], n+1)
		if err := self.Send(m.From, "hop", data); err != nil {
			t.Errorf("%s: %v", self.ID(), err)
		}
		if n%10 == 0 {
			if err := self.Broadcast("side", nil); err != nil {
				t.Errorf("%s: %v", self.ID(), err)
			}
		}
	}
	c := newTestCluster(t, f, map[string]func(Transport, Message){"n1": hop, "n2": hop})
	n1, n2 := c.replicas[0], c.replicas[1]
	for b := range balls {
		from, to := n1, n2
		if b%2 == 1 {
			from, to = n2, n1
		}
		data := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(b)), 0)
		if err := from.tr.Send(to.id, "hop", data); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-allDone:
	case <-time.After(waitTimeout):
		t.Fatalf("only %d of %d rallies finished: handlers sending from handlers deadlocked?", finished.Load(), balls)
	}
}

func testClose(t *testing.T, f clusterFactory) {
	c := newTestCluster(t, f, nil)
	n1, n2, n3 := c.replicas[0], c.replicas[1], c.replicas[2]

	// Flood n2 from two senders while closing it: once Close returns the
	// handler must not run again (the recorder checks).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range []*recorder{n1, n3} {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.tr.Send("n2", "flood", nil); err != nil {
					t.Errorf("%s: %v", s.id, err)
					return
				}
			}
		})
	}
	n2.waitFor("some flood", func() bool { return len(n2.msgs) > 10 })
	if err := n2.close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	close(stop)
	wg.Wait()

	if err := n2.close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n2.tr.Send("n1", "x", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
	if err := n2.tr.Broadcast("x", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Broadcast after Close = %v, want ErrClosed", err)
	}
	// Concurrent Closes of another endpoint all return nil.
	var cw sync.WaitGroup
	for range 4 {
		cw.Go(func() {
			if err := n3.close(); err != nil {
				t.Errorf("concurrent Close: %v", err)
			}
		})
	}
	cw.Wait()

	// The others carry on; sending to a closed endpoint is not an error.
	if err := n1.tr.Send("n2", "x", nil); err != nil {
		t.Errorf("Send to closed endpoint: %v", err)
	}
	if err := n1.tr.Broadcast("after", []byte("n1")); err != nil {
		t.Fatal(err)
	}
	n4 := c.replicas[3]
	n4.waitFor("broadcast after closes", func() bool { return len(filterKind(n4.msgs, "after")) == 1 })
	barrier(n1, c.client)
}

func testPayload(t *testing.T, f clusterFactory) {
	c := newTestCluster(t, f, nil)
	n1 := c.replicas[0]
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 128, 64 << 10, 512 << 10}
	var sent [][]byte
	for _, size := range sizes {
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		sent = append(sent, bytes.Clone(p))
		if err := n1.tr.Send("c1", "blob", p); err != nil {
			t.Fatalf("Send %d bytes: %v", size, err)
		}
		if err := n1.tr.Broadcast("blob", p); err != nil {
			t.Fatalf("Broadcast %d bytes: %v", size, err)
		}
		// The transport must not retain p: scribble over it at once.
		for i := range p {
			p[i] ^= 0xff
		}
	}
	for _, r := range c.all()[1:] {
		r.waitFor("blobs", func() bool { return len(filterKind(r.msgs, "blob")) == len(sizes) })
		for i, m := range r.received("blob") {
			if m.From != "n1" || !bytes.Equal(m.Data, sent[i]) {
				t.Errorf("%s: blob %d (%d bytes) differs from the %d bytes sent", r.id, i, len(m.Data), len(sent[i]))
			}
			// Each receiver owns its copy: scribbling must not race with
			// the other receivers (the race detector would notice).
			for j := range m.Data {
				m.Data[j] = 0
			}
		}
	}
}

func testInvalid(t *testing.T, f clusterFactory) {
	c := newTestCluster(t, f, nil)
	n1 := c.replicas[0]
	for _, tc := range []struct{ to, kind string }{
		{"n2", "to"}, {"n2", ""}, {"n2", "a.b"}, {"n2", "a b"}, {"", "x"}, {"n*", "x"}, {"n>", "x"}, {"n\x01", "x"},
	} {
		if err := n1.tr.Send(tc.to, tc.kind, nil); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Send(%q, %q) = %v, want ErrInvalidToken", tc.to, tc.kind, err)
		}
	}
	for _, kind := range []string{"to", "", "a.b", "*"} {
		if err := n1.tr.Broadcast(kind, nil); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Broadcast(%q) = %v, want ErrInvalidToken", kind, err)
		}
	}
	h := func(Message) {}
	for _, id := range []string{"", "a.b", "n 5", ">"} {
		if tr, err := c.join(id, RoleReplica, h); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("join(%q) = %v, %v; want ErrInvalidToken", id, tr, err)
		}
	}
	if _, err := c.join("n9", Role(0), h); err == nil {
		t.Error("join with Role(0) succeeded")
	}
	if _, err := c.join("n9", RoleReplica, nil); err == nil {
		t.Error("join with nil handler succeeded")
	}
}
