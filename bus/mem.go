package bus

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
)

// Hub is an in-memory cluster for tests: endpoints that Join the same Hub
// exchange messages with the same semantics as NATSTransport, with no
// network. Delivery is asynchronous (every endpoint has an unbounded FIFO
// and its own delivery goroutine), so a handler may Send without deadlock.
// Being one queue per endpoint, it also keeps a sender's broadcasts and
// point-to-point messages in order relative to each other, which NATS does
// not: code that must also run over NATS should not rely on it.
type Hub struct {
	cluster string

	mu     sync.Mutex // serialises Join, leave and Close
	closed bool

	// view is an immutable snapshot of the members, replaced on every Join
	// and leave, so the send path takes no lock.
	view   atomic.Pointer[hubView]
	filter atomic.Pointer[func(from, to, kind string) bool]
}

type hubView struct {
	byID     map[string]*MemTransport
	replicas []*MemTransport
}

// NewHub returns an empty Hub for cluster. An invalid cluster name is
// reported by Join.
func NewHub(cluster string) *Hub {
	h := &Hub{cluster: cluster}
	h.view.Store(&hubView{byID: map[string]*MemTransport{}})
	return h
}

// SetFilter installs f, consulted at send time once per recipient (a
// broadcast asks once for each replica): returning false drops that copy,
// as a faulty network would. nil removes the filter. f is called from the
// senders' goroutines, concurrently, and must be safe for that.
func (h *Hub) SetFilter(f func(from, to, kind string) bool) {
	if f == nil {
		h.filter.Store(nil)
		return
	}
	h.filter.Store(&f)
}

func (h *Hub) allow(from, to, kind string) bool {
	f := h.filter.Load()
	return f == nil || (*f)(from, to, kind)
}

// Join adds endpoint id with the given role. The id must not be in use;
// after its transport is closed it may join again (a restarted replica).
func (h *Hub) Join(id string, role Role, handler Handler) (*MemTransport, error) {
	if err := checkEndpoint(h.cluster, id, role, handler); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	old := h.view.Load()
	if _, dup := old.byID[id]; dup {
		return nil, fmt.Errorf("bus: endpoint %q already joined", id)
	}
	t := &MemTransport{hub: h, id: id, role: role}
	t.in = newInbox(handler, &t.stats)
	h.publishView(old, t, nil)
	return t, nil
}

// leave removes t, if it is still a member. Called with h.mu not held.
func (h *Hub) leave(t *MemTransport) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.view.Load(); old.byID[t.id] == t {
		h.publishView(old, nil, t)
	}
}

// publishView stores a copy of old with add added and drop removed. h.mu
// must be held.
func (h *Hub) publishView(old *hubView, add, drop *MemTransport) {
	next := &hubView{byID: make(map[string]*MemTransport, len(old.byID)+1)}
	for id, t := range old.byID {
		if t != drop {
			next.byID[id] = t
		}
	}
	if add != nil {
		next.byID[add.id] = add
	}
	for _, t := range next.byID {
		if t.role == RoleReplica {
			next.replicas = append(next.replicas, t)
		}
	}
	h.view.Store(next)
}

// Close closes every endpoint; later Joins fail with ErrClosed. It must not
// be called from a handler.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	members := h.view.Load().byID
	h.mu.Unlock()
	// Outside h.mu: closing waits for handlers, which may be sending.
	for _, t := range members {
		t.Close()
	}
}

// MemTransport is an endpoint of a Hub.
//
// Stats: Sent counts Send and Broadcast calls that returned nil; Received
// counts handler calls; Dropped counts, on the sender, copies not delivered
// because the receiver is unknown or oneself, or the filter refused them,
// and on the receiver, messages that arrived during or after Close.
type MemTransport struct {
	hub   *Hub
	id    string
	role  Role
	in    *inbox
	stats counters

	closed  atomic.Bool
	closeMu sync.Mutex
}

// ID returns the endpoint id.
func (t *MemTransport) ID() string { return t.id }

// Send delivers a copy of data to endpoint to, if it is a member.
func (t *MemTransport) Send(to, kind string, data []byte) error {
	if t.closed.Load() {
		return ErrClosed
	}
	if err := checkKind(kind); err != nil {
		return err
	}
	if err := checkToken("receiver", to); err != nil {
		return err
	}
	t.stats.sent.Add(1)
	r := t.hub.view.Load().byID[to]
	if r == nil || r == t {
		t.stats.dropped.Add(1)
		return nil
	}
	t.deliver(r, kind, data)
	return nil
}

// Broadcast delivers a copy of data to every replica member but t.
func (t *MemTransport) Broadcast(kind string, data []byte) error {
	if t.closed.Load() {
		return ErrClosed
	}
	if err := checkKind(kind); err != nil {
		return err
	}
	t.stats.sent.Add(1)
	for _, r := range t.hub.view.Load().replicas {
		if r != t {
			t.deliver(r, kind, data)
		}
	}
	return nil
}

// deliver queues one copy for r; each receiver owns its Data, like with
// NATS. Pushing synchronously from the sender's goroutine is what keeps
// per-sender order.
func (t *MemTransport) deliver(r *MemTransport, kind string, data []byte) {
	if !t.hub.allow(t.id, r.id, kind) {
		t.stats.dropped.Add(1)
		return
	}
	r.in.push(Message{From: t.id, Kind: kind, Data: bytes.Clone(data)})
}

// Close leaves the Hub and stops delivery; once it returns the handler is
// not running and will not be called again. It is idempotent and must not
// be called from the handler.
func (t *MemTransport) Close() error {
	t.closeMu.Lock()
	defer t.closeMu.Unlock()
	if t.closed.Load() {
		return nil
	}
	t.closed.Store(true)
	t.hub.leave(t)
	t.in.close()
	return nil
}

// Stats returns a snapshot of the counters.
func (t *MemTransport) Stats() Stats { return t.stats.snapshot() }

var _ Transport = (*MemTransport)(nil)
