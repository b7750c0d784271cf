package bus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The conformance suite states the Transport contract once and runs it
// against every implementation (mem_test.go, nats_test.go).

// joinFunc adds an endpoint to a fresh cluster; the factory registers
// cleanups that close everything it created.
type joinFunc func(id string, role Role, h Handler) (Transport, error)

type clusterFactory func(t *testing.T) joinFunc

// waitTimeout is generous because -race on a loaded CI machine is slow; it
// only bounds failures, passing tests never wait for it.
const waitTimeout = 30 * time.Second

// recorder is a test endpoint: it records deliveries, answers "ping" with
// "pong" (a barrier, see below), runs an optional hook, and fails the test
// if handler calls overlap or happen after Close returned.
type recorder struct {
	t    *testing.T
	id   string
	tr   Transport
	hook func(self Transport, m Message)

	inHandler   atomic.Bool
	closeReturn atomic.Bool

	mu      sync.Mutex
	msgs    []Message // everything but pings
	changed chan struct{}
}

func (r *recorder) handle(m Message) {
	if !r.inHandler.CompareAndSwap(false, true) {
		r.t.Errorf("%s: handler calls overlap", r.id)
	}
	defer r.inHandler.Store(false)
	if r.closeReturn.Load() {
		r.t.Errorf("%s: handler called after Close returned: %s from %s", r.id, m.Kind, m.From)
	}
	runtime.Gosched() // widen the window in which an overlap would show
	switch {
	case m.Kind == "ping":
		// Sending from inside the handler is part of the contract.
		if err := r.tr.Send(m.From, "pong", m.Data); err != nil && !errors.Is(err, ErrClosed) {
			r.t.Errorf("%s: pong: %v", r.id, err)
		}
		return
	case r.hook != nil:
		r.hook(r.tr, m)
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// waitFor blocks until cond (called with r.mu held) holds.
func (r *recorder) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok, ch := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			r.t.Fatalf("%s: timed out waiting for %s", r.id, what)
		}
	}
}

// received returns the recorded messages of the given kind.
func (r *recorder) received(kind string) []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return filterKind(r.msgs, kind)
}

func filterKind(msgs []Message, kind string) []Message {
	var out []Message
	for _, m := range msgs {
		if m.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

// close closes the transport and arms the after-Close check.
func (r *recorder) close() error {
	err := r.tr.Close()
	r.closeReturn.Store(true)
	return err
}

var barrierNonce atomic.Uint64

// barrier makes a ping-pong round trip from a to b. When it returns, b has
// handled everything a sent to b before it (per-sender FIFO), and a has
// handled everything b sent to a before answering. It also proves absence:
// anything a's own sends could have bounced back to a (an echo) would have
// arrived before the pong.
func barrier(a, b *recorder) {
	a.t.Helper()
	nonce := binary.BigEndian.AppendUint64(nil, barrierNonce.Add(1))
	if err := a.tr.Send(b.id, "ping", nonce); err != nil {
		a.t.Fatalf("barrier %s->%s: %v", a.id, b.id, err)
	}
	a.waitFor("pong from "+b.id, func() bool {
		for _, m := range filterKind(a.msgs, "pong") {
			if m.From == b.id && bytes.Equal(m.Data, nonce) {
				return true
			}
		}
		return false
	})
}

type testCluster struct {
	t        *testing.T
	join     joinFunc
	replicas []*recorder // n1..n4
	client   *recorder   // c1
}

func (c *testCluster) add(id string, role Role, hook func(Transport, Message)) *recorder {
	c.t.Helper()
	r := &recorder{t: c.t, id: id, hook: hook, changed: make(chan struct{})}
	tr, err := c.join(id, role, r.handle)
	if err != nil {
		c.t.Fatalf("join %s: %v", id, err)
	}
	if tr.ID() != id {
		c.t.Fatalf("ID() = %q, want %q", tr.ID(), id)
	}
	r.tr = tr
	return r
}

// newTestCluster builds 4 replicas n1..n4 and one client c1; hooks maps ids
// to handler hooks.
func newTestCluster(t *testing.T, f clusterFactory, hooks map[string]func(Transport, Message)) *testCluster {
	c := &testCluster{t: t, join: f(t)}
	for i := 1; i <= 4; i++ {
		id := fmt.Sprintf("n%d", i)
		c.replicas = append(c.replicas, c.add(id, RoleReplica, hooks[id]))
	}
	c.client = c.add("c1", RoleClient, hooks["c1"])
	return c
}

func (c *testCluster) all() []*recorder {
	return append(append([]*recorder{}, c.replicas...), c.client)
}

// settle runs a barrier from every sender to every other endpoint.
func (c *testCluster) settle(senders ...*recorder) {
	c.t.Helper()
	for _, s := range senders {
		for _, r := range c.all() {
			if r != s {
				barrier(s, r)
			}
		}
	}
}

type statser interface{ Stats() Stats }

func stats(t *testing.T, tr Transport) Stats {
	t.Helper()
	s, ok := tr.(statser)
	if !ok {
		t.Fatalf("%T has no Stats method", tr)
	}
	return s.Stats()
}

func runConformance(t *testing.T, f clusterFactory) {
	t.Run("BroadcastReachesOtherReplicasOnly", func(t *testing.T) { testBroadcast(t, f) })
	t.Run("SendReachesExactlyTarget", func(t *testing.T) { testSend(t, f) })
	t.Run("PerSenderFIFO", func(t *testing.T) { testFIFO(t, f) })
	t.Run("HandlerCallsSerialised", func(t *testing.T) { testSerialised(t, f) })
	t.Run("SendFromHandler", func(t *testing.T) { testSendFromHandler(t, f) })
	t.Run("Close", func(t *testing.T) { testClose(t, f) })
	t.Run("PayloadIntact", func(t *testing.T) { testPayload(t, f) })
	t.Run("InvalidTokens", func(t *testing.T) { testInvalid(t, f) })
}
