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
// A replica subscribes twice (broadcasts and its inbox) with both subscriptions feeding
// one channel, the arrival queue (pull.go): a sender's messages then arrive in the order
// its connection carried them, and the node can read the queue itself (Pull) instead of
// through a goroutine that calls the Handler. nats.go drops (slow consumer) instead of
// blocking when that channel is full, so it is sized for a stall of its reader; a drop is
// a lost message as on any network, which PBFT recovers from: replicas retransmit protocol
// messages, and a client retransmits its request to every replica until it has its
// answer. A client subscribes once, asynchronously, with pending limits lifted so nats.go
// never drops a reply (its goroutine calls the Handler); deliverMu serialises handler
// calls in both cases.
//
// Stats: Sent counts Send and Broadcast calls that returned nil; Received
// counts messages handed to the Handler or taken by the owner (Arrivals.Take); Dropped
// counts Sends to oneself, arrivals whose subject does not parse or that name this
// endpoint as sender, arrivals discarded because Close had begun, and arrivals nats.go
// dropped because the arrival queue was full.
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
	// arrivals is a replica's arrival queue (pull.go), nil for a client. Until Pull,
	// a dispatcher goroutine hands it to the Handler; dispatchStop stops it (nil once
	// stopped), dispatchDone is closed when it has.
	arrivals     chan *nats.Msg
	dispatchStop chan struct{}
	dispatchDone chan struct{}
	pulled       bool // guarded by closeMu

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
		t.arrivals = make(chan *nats.Msg, arrivalQueue)
		t.dispatchStop, t.dispatchDone = make(chan struct{}), make(chan struct{})
		go t.dispatch(t.dispatchStop, t.dispatchDone)
	}
	for _, f := range filters {
		var sub *nats.Subscription
		var err error
		if t.arrivals != nil {
			sub, err = nc.ChanSubscribe(f, t.arrivals)
		} else if sub, err = nc.Subscribe(f, t.deliver); err == nil {
			err = sub.SetPendingLimits(-1, -1)
		}
		if sub != nil {
			t.subs = append(t.subs, sub)
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
	return t.publish(subj, data)
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
	return t.publish(subj, data)
}

// publish hands data to nats.go, which copies it into its write buffer and
// flushes in the background.
// MaxPayload is the largest message the NATS server takes.
func (t *NATSTransport) MaxPayload() int64 { return t.nc.MaxPayload() }

func (t *NATSTransport) publish(subj string, data []byte) error {
	if err := t.nc.Publish(subj, data); err != nil {
		return fmt.Errorf("bus: publish %s: %w", subj, err)
	}
	t.stats.sent.Add(1)
	return nil
}

// deliver hands one arrival to the Handler: a client's subscription callback or a
// replica's dispatcher; deliverMu lets Close wait for a call in progress. nats.go gives
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
	t.stats.dropped.Add(t.slowConsumerDrops()) // unsubscribed, they no longer say
	for _, sub := range t.subs {
		// A closed connection has already dropped its subscriptions.
		if err := sub.Unsubscribe(); err != nil &&
			!errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			errs = errors.Join(errs, fmt.Errorf("bus: unsubscribe %s: %w", sub.Subject, err))
		}
	}
	t.stopDispatch()
	if t.arrivals != nil && !t.pulled {
		t.stats.dropped.Add(uint64(len(t.arrivals))) // never to be read
	}
	// nats.go may still be running a callback for a message it had queued:
	// wait for the handler, and make later callbacks drop.
	t.deliverMu.Lock()
	t.stopped = true
	t.deliverMu.Unlock()
	return errs
}

// Stats returns a snapshot of the counters.
func (t *NATSTransport) Stats() Stats {
	st := t.stats.snapshot()
	if !t.closed.Load() {
		st.Dropped += t.slowConsumerDrops()
	}
	return st
}

var _ Transport = (*NATSTransport)(nil)
