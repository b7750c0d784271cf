package bus

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// natsChanSize is the buffer between nats.go's reader goroutine and our pump.
// nats.go drops (slow consumer) rather than block when it is full, but the
// pump only moves messages into the unbounded inbox, so it fills only if the
// pump is starved of CPU for ~16k messages. Such drops are counted in Dropped.
const natsChanSize = 1 << 14

// subscribeTimeout bounds the round trip NewNATS makes so that its
// subscriptions are registered at the server before it returns.
const subscribeTimeout = 5 * time.Second

// NATSTransport is a Transport over a nats.go connection.
//
// The connection belongs to the caller: Close unsubscribes but leaves nc
// open, so several transports (or other users) may share one connection,
// and the caller closes nc after the transports. Connect it with NoEcho (as
// ConnectInProcess and Connect do) so the server does not bounce a
// replica's broadcasts back to it; messages naming this endpoint as sender
// are dropped on arrival anyway.
//
// Why channel subscriptions: a replica needs two subscriptions (broadcasts
// and its inbox), and nats.go runs each async subscription's callbacks on
// its own goroutine, so a mutex would serialise the handler but could
// reorder a peer's broadcast with its following point-to-point message.
// Both subscriptions instead feed one channel from nats.go's single reader
// goroutine, i.e. in the order the server sent them, and the server keeps
// each publisher's order per receiving connection. One pump goroutine moves
// them into the inbox, whose goroutine calls the handler.
//
// Stats: Sent counts Send and Broadcast calls that returned nil; Received
// counts handler calls; Dropped counts Sends to oneself, arrivals whose
// subject does not parse or that name this endpoint as sender, nats.go
// slow-consumer drops, and messages discarded by Close.
type NATSTransport struct {
	nc       *nats.Conn
	cluster  string
	id       string
	subjects *subjectCache
	stats    counters

	msgs     chan *nats.Msg
	stop     chan struct{}
	pumpDone chan struct{}
	in       *inbox

	closed  atomic.Bool // fast check on the send path
	closeMu sync.Mutex  // serialises Close, so a second caller also waits

	subsMu     sync.Mutex // guards subs against Stats during Close
	subs       []*nats.Subscription
	subsClosed bool
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
		subjects: newSubjectCache(cluster, id),
		msgs:     make(chan *nats.Msg, natsChanSize),
		stop:     make(chan struct{}),
		pumpDone: make(chan struct{}),
	}
	t.in = newInbox(h, &t.stats)
	go t.pump()

	filters := []string{inboxFilter(cluster, id)}
	if role == RoleReplica {
		filters = append(filters, broadcastFilter(cluster))
	}
	for _, f := range filters {
		sub, err := nc.ChanSubscribe(f, t.msgs)
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("bus: subscribe %s: %w", f, err)
		}
		t.subsMu.Lock()
		t.subs = append(t.subs, sub)
		t.subsMu.Unlock()
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
	subj, err := t.subjects.subject(to, kind)
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
	subj, err := t.subjects.subject("", kind)
	if err != nil {
		return err
	}
	return t.publish(subj, data)
}

// publish hands data to nats.go, which copies it into its write buffer and
// flushes in the background.
func (t *NATSTransport) publish(subj string, data []byte) error {
	if err := t.nc.Publish(subj, data); err != nil {
		return fmt.Errorf("bus: publish %s: %w", subj, err)
	}
	t.stats.sent.Add(1)
	return nil
}

// pump moves arrivals from the nats.go channel into the inbox. It never
// blocks on the handler, so nats.go's channel drains as fast as it fills.
func (t *NATSTransport) pump() {
	defer close(t.pumpDone)
	for {
		select {
		case m := <-t.msgs:
			t.accept(m)
		case <-t.stop:
			return
		}
	}
}

// accept parses one arrival and queues it for the handler. nats.go gives
// every message its own copy of the payload, so Data needs no copy here.
func (t *NATSTransport) accept(m *nats.Msg) {
	kind, from, ok := parseSubject(t.cluster, t.id, m.Subject)
	if !ok || from == t.id {
		t.stats.dropped.Add(1)
		return
	}
	t.in.push(Message{From: from, Kind: kind, Data: m.Data})
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
	t.subsMu.Lock()
	for _, sub := range t.subs {
		if n, err := sub.Dropped(); err == nil {
			t.stats.dropped.Add(uint64(n))
		}
		// A closed connection has already dropped its subscriptions.
		if err := sub.Unsubscribe(); err != nil &&
			!errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			errs = errors.Join(errs, fmt.Errorf("bus: unsubscribe %s: %w", sub.Subject, err))
		}
	}
	t.subsClosed = true
	t.subsMu.Unlock()

	t.in.close()
	close(t.stop)
	<-t.pumpDone
	// Unsubscribe is synchronous with nats.go's reader, so nothing more can
	// arrive; count what the pump left behind.
	for {
		select {
		case <-t.msgs:
			t.stats.dropped.Add(1)
		default:
			return errs
		}
	}
}

// Stats returns a snapshot of the counters.
func (t *NATSTransport) Stats() Stats {
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	s := t.stats.snapshot()
	if !t.subsClosed {
		for _, sub := range t.subs {
			if n, err := sub.Dropped(); err == nil {
				s.Dropped += uint64(n)
			}
		}
	}
	return s
}

var _ Transport = (*NATSTransport)(nil)
