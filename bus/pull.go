package bus

import (
	"errors"

	"github.com/nats-io/nats.go"
)

// arrivalQueue is how many arrivals a replica endpoint's channel holds. nats.go drops
// (slow consumer) rather than blocks when it is full, so it is sized for a stall of the
// reader, not for its steady state: at ~50,000 arrivals/s (n=4, 64 clients) it covers
// about a second; 512 KiB of pointers per replica. A variable so that a test can fill it.
var arrivalQueue = 1 << 16

// Puller is a Transport whose owner can take its arrivals itself, on its own goroutine,
// instead of through the Handler: nats.go's read loop then hands a message straight to
// the owner's goroutine, one goroutine hand-off (a futex and a context switch when it
// wakes another thread) less per message than a Handler that queues it for the owner.
type Puller interface {
	Transport
	// Pull stops the Handler (waiting for a call in progress) and returns the arrivals
	// from then on. Nothing is lost or reordered in the switch: the Handler and the
	// owner read the same queue. It fails for an endpoint that has no arrival queue
	// (a client), one pulled already, and after Close.
	Pull() (Arrivals, error)
}

// Arrivals is a replica endpoint's inbound queue: both its subscriptions feed C, so a
// sender's messages arrive in the order its connection carried them, broadcasts and
// point-to-point alike. The zero Arrivals has a nil C, on which a receive blocks forever.
type Arrivals struct {
	C <-chan *nats.Msg
	t *NATSTransport
}

// errNoArrivals is what Pull says for an endpoint that cannot be pulled.
var errNoArrivals = errors.New("bus: endpoint has no arrival queue (clients have none)")

// Take appends first and then whatever is queued behind it, up to max messages in all,
// to dst as Messages, dropping (and counting) what does not parse or names this endpoint
// as sender, and everything once Close has begun. One wake-up of the owner thus serves a
// burst.
func (a Arrivals) Take(first *nats.Msg, dst []Message, max int) []Message {
	dst = a.t.appendArrival(dst, first)
	for n := 1; n < max; n++ {
		select {
		case m := <-a.C:
			dst = a.t.appendArrival(dst, m)
		default:
			return dst
		}
	}
	return dst
}

func (t *NATSTransport) appendArrival(dst []Message, m *nats.Msg) []Message {
	kind, from, ok := parseSubject(t.cluster, t.id, m.Subject)
	if !ok || from == t.id || t.closed.Load() {
		t.stats.dropped.Add(1)
		return dst
	}
	t.stats.received.Add(1)
	return append(dst, Message{From: from, Kind: kind, Data: m.Data})
}

// Pull implements Puller.
func (t *NATSTransport) Pull() (Arrivals, error) {
	t.closeMu.Lock()
	defer t.closeMu.Unlock()
	switch {
	case t.arrivals == nil:
		return Arrivals{}, errNoArrivals
	case t.closed.Load():
		return Arrivals{}, ErrClosed
	case t.pulled:
		return Arrivals{}, errors.New("bus: arrivals already pulled")
	}
	t.stopDispatch()
	t.pulled = true
	return Arrivals{C: t.arrivals, t: t}, nil
}

// dispatch feeds the arrival queue to the Handler until Pull or Close stops it.
func (t *NATSTransport) dispatch(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select { // a stop takes precedence over what is queued: the owner reads that
		case <-stop:
			return
		default:
		}
		select {
		case <-stop:
			return
		case m := <-t.arrivals:
			t.deliver(m)
		}
	}
}

// stopDispatch stops the dispatcher, if it runs, and waits for it. closeMu is held.
func (t *NATSTransport) stopDispatch() {
	if t.dispatchStop == nil {
		return
	}
	close(t.dispatchStop)
	<-t.dispatchDone
	t.dispatchStop = nil
}

// slowConsumerDrops counts what nats.go dropped because the arrival queue was full.
func (t *NATSTransport) slowConsumerDrops() uint64 {
	var n uint64
	for _, sub := range t.subs {
		if d, err := sub.Dropped(); err == nil && d > 0 {
			n += uint64(d)
		}
	}
	return n
}

var _ Puller = (*NATSTransport)(nil)
