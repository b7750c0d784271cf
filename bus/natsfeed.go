package bus

import (
	"github.com/nats-io/nats.go"
)

// Feed is a transport whose deliveries its owner takes from a channel, on its own
// goroutine, instead of through a Handler called on the transport's: one goroutine
// hand-off fewer per burst of messages.
type Feed interface {
	Transport
	// Deliveries is the channel nats.go's reader fills.
	Deliveries() <-chan *nats.Msg
	// Accept turns a delivery into a Message; false for one to drop (a subject that does
	// not parse, an echo of this endpoint's own, or after Close).
	Accept(m *nats.Msg) (Message, bool)
}

// NewNATSFeed is NewNATS with deliveries on a channel of the given capacity. nats.go
// never blocks its reader on a full channel: it drops the message and reports a slow
// consumer, which PBFT survives as a lost message (retransmissions, view change).
func NewNATSFeed(nc *nats.Conn, cluster, id string, role Role, capacity int) (*NATSFeed, error) {
	f := &NATSFeed{ch: make(chan *nats.Msg, capacity)}
	t, err := newNATS(nc, cluster, id, role, func(Message) {}, func(subj string) (*nats.Subscription, error) {
		return nc.ChanSubscribe(subj, f.ch)
	})
	if err != nil {
		return nil, err
	}
	f.NATSTransport = t
	return f, nil
}

// NATSFeed is a NATSTransport read through Deliveries.
type NATSFeed struct {
	*NATSTransport
	ch chan *nats.Msg
}

// Deliveries implements Feed.
func (f *NATSFeed) Deliveries() <-chan *nats.Msg { return f.ch }

// Accept implements Feed.
func (f *NATSFeed) Accept(m *nats.Msg) (Message, bool) {
	t := f.NATSTransport
	kind, from, ok := parseSubject(t.cluster, t.id, m.Subject)
	if !ok || from == t.id || t.closed.Load() {
		t.stats.dropped.Add(1)
		return Message{}, false
	}
	t.stats.received.Add(1)
	Stamp(StageDeliver, kind, from)
	return Message{From: from, Kind: kind, Data: m.Data}, true
}

var _ Feed = (*NATSFeed)(nil)
