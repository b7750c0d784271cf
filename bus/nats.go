package bus

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// subscribeTimeout bounds the round trip NewNATS makes so that its
// subscriptions are registered at the server before it returns.
const subscribeTimeout = 5 * time.Second

// NATSTransport is a Transport over a nats.go connection.
//
// The connection belongs to the caller: Close unsubscribes but leaves nc
// open (other code may use it too), and the caller closes nc after the
// transport. Connect it with NoEcho (as ConnectInProcess and Connect do) so
// the server does not bounce a replica's broadcasts back to it; messages
// naming this endpoint as sender are dropped on arrival anyway. Because of
// NoEcho, endpoints that must talk to each other need separate connections:
// the server never delivers a connection's messages to that same connection.
//
// Why a mutex and not one channel: a replica needs two subscriptions
// (broadcasts and its inbox), and nats.go runs each async subscription's
// callbacks on its own goroutine; a mutex around the handler serialises the
// two. The alternatives were worse: a channel subscription shared by both
// would keep their arrival order, but nats.go drops (slow consumer) instead
// of blocking when the channel is full, which happened under load on two
// CPUs; one subscription to pbft.<cluster>.> would make every replica
// receive every point-to-point message in the cluster. The cost is that a
// broadcast and a point-to-point message from the same sender may be
// reordered; each path on its own stays FIFO because each subscription's
// goroutine is. Pending limits are lifted so nats.go never drops: PBFT's
// watermarks bound what a correct peer can have outstanding (a flooding
// Byzantine peer costs memory instead, which only flow control or
// authorisation at the server could prevent).
//
// Stats: Sent counts Send and Broadcast calls that returned nil; Received
// counts handler calls; Dropped counts Sends to oneself, arrivals whose
// subject does not parse or that name this endpoint as sender, and arrivals
// discarded because Close had begun.
type NATSTransport struct {
	nc       *nats.Conn
	cluster  string
	id       string
	h        Handler
	subjects *subjectCache
	stats    counters

	closed  atomic.Bool // fast check on the send path
	closeMu sync.Mutex  // serialises Close, so a second caller also waits
	subs    []*nats.Subscription

	deliverMu sync.Mutex // held while the handler runs
	stopped   bool       // guarded by deliverMu; set by Close
}

// NewNATS subscribes endpoint id of cluster on nc and delivers to h.
// Replicas subscribe to pbft.<cluster>.*.* and pbft.<cluster>.to.<id>.*.*,
// clients only to the latter. When NewNATS returns, the server has
// registered the subscriptions (it flushes nc), so it fails if nc cannot
// reach a server within a few seconds.
func NewNATS(nc *nats.Conn, cluster, id string, role Role, h Handler) (*NATSTransport, error) {
	if nc == nil {
		return nil, errors.New("bus: nil NATS connection")
	}
	if err := checkEndpoint(cluster, id, role, h); err != nil {
		return nil, err
	}
	t := &NATSTransport{
		nc:       nc,
		cluster:  cluster,
		id:       id,
		h:        h,
		subjects: newSubjectCache(cluster, id),
	}
	filters := []string{inboxFilter(cluster, id)}
	if role == RoleReplica {
		filters = append(filters, broadcastFilter(cluster))
	}
	for _, f := range filters {
		sub, err := nc.Subscribe(f, t.deliver)
		if err == nil {
			t.subs = append(t.subs, sub)
			err = sub.SetPendingLimits(-1, -1)
		}
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("bus: subscribe %s: %w", f, err)
		}
	}
	if err := nc.FlushTimeout(subscribeTimeout); err != nil {
		t.Close()
		return nil, fmt.Errorf("bus: subscribe %s: %w", id, err)
	}
	Stamp(StageName, "", id)
	return t, nil
}

// ID returns the endpoint id.
func (t *NATSTransport) ID() string { return t.id }

// Send publishes data point-to-point to endpoint to.
func (t *NATSTransport) Send(to, kind string, data []byte) error {
	if t.closed.Load() {
		return ErrClosed
	}
	subj, err := t.subjects.direct(to, kind)
	if err != nil {
		return err
	}
	if to == t.id {
		// NoEcho would discard it at the server; say so in the stats.
		t.stats.sent.Add(1)
		t.stats.dropped.Add(1)
		return nil
	}
	return t.publish(subj, kind, to, data)
}

// Broadcast publishes data to every replica except this endpoint.
func (t *NATSTransport) Broadcast(kind string, data []byte) error {
	if t.closed.Load() {
		return ErrClosed
	}
	subj, err := t.subjects.broadcast(kind)
	if err != nil {
		return err
	}
	return t.publish(subj, kind, "", data)
}

// publish hands data to nats.go, which copies it into its write buffer and
// flushes in the background.
// MaxPayload is the largest message the NATS server takes.
func (t *NATSTransport) MaxPayload() int64 { return t.nc.MaxPayload() }

func (t *NATSTransport) publish(subj, kind, to string, data []byte) error {
	Stamp(StagePublish, kind, to)
	if err := t.nc.Publish(subj, data); err != nil {
		return fmt.Errorf("bus: publish %s: %w", subj, err)
	}
	t.stats.sent.Add(1)
	return nil
}

// deliver is the callback of both subscriptions, so it runs on two
// goroutines; deliverMu makes the handler calls one at a time. nats.go gives
// every message its own copy of the payload, so Data needs no copy here.
func (t *NATSTransport) deliver(m *nats.Msg) {
	kind, from, ok := parseSubject(t.cluster, t.id, m.Subject)
	if !ok || from == t.id {
		t.stats.dropped.Add(1)
		return
	}
	t.deliverMu.Lock()
	defer t.deliverMu.Unlock()
	if t.stopped {
		t.stats.dropped.Add(1)
		return
	}
	t.stats.received.Add(1)
	Stamp(StageDeliver, kind, from)
	t.h(Message{From: from, Kind: kind, Data: m.Data})
}

// Close unsubscribes and stops delivery; once it returns the handler is not
// running and will not be called again. It does not close the connection.
// It is idempotent and must not be called from the handler.
func (t *NATSTransport) Close() error {
	t.closeMu.Lock()
	defer t.closeMu.Unlock()
	if t.closed.Load() {
		return nil
	}
	t.closed.Store(true)

	var errs error
	for _, sub := range t.subs {
		// A closed connection has already dropped its subscriptions.
		if err := sub.Unsubscribe(); err != nil &&
			!errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			errs = errors.Join(errs, fmt.Errorf("bus: unsubscribe %s: %w", sub.Subject, err))
		}
	}
	// nats.go may still be running a callback for a message it had queued:
	// wait for the handler, and make later callbacks drop.
	t.deliverMu.Lock()
	t.stopped = true
	t.deliverMu.Unlock()
	return errs
}

// Stats returns a snapshot of the counters.
func (t *NATSTransport) Stats() Stats { return t.stats.snapshot() }

var _ Transport = (*NATSTransport)(nil)
