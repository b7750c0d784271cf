package bus

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// TracePublisher is implemented by transports that can carry trace events
// (pbft/trace) besides protocol messages. Trace events are diagnostics: they
// are not authenticated and nothing in the protocol reads them.
type TracePublisher interface {
	PublishTrace(data []byte) error
}

// PublishTrace publishes data on this endpoint's trace subject,
// pbft.<cluster>.trace.<id>.events.
func (t *NATSTransport) PublishTrace(data []byte) error {
	if t.closed.Load() {
		return ErrClosed
	}
	subj := traceSubject(t.cluster, t.id)
	if err := t.nc.Publish(subj, data); err != nil {
		return fmt.Errorf("bus: publish %s: %w", subj, err)
	}
	return nil
}

var _ TracePublisher = (*NATSTransport)(nil)

// SubscribeTrace delivers every trace message of cluster published on nc's
// server to h, with the sender named in its subject, from nats.go's callback
// goroutine (one at a time). nats.go's default pending limits apply: a viewer
// that cannot keep up loses trace messages and never slows the replicas. The
// caller unsubscribes.
func SubscribeTrace(nc *nats.Conn, cluster string, h func(sender string, data []byte)) (*nats.Subscription, error) {
	if nc == nil {
		return nil, errors.New("bus: nil NATS connection")
	}
	if err := checkToken("cluster", cluster); err != nil {
		return nil, err
	}
	sub, err := nc.Subscribe(TraceFilter(cluster), func(m *nats.Msg) {
		if sender, ok := TraceSender(cluster, m.Subject); ok {
			h(sender, m.Data)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe %s: %w", TraceFilter(cluster), err)
	}
	if err := nc.FlushTimeout(subscribeTimeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("bus: subscribe %s: %w", TraceFilter(cluster), err)
	}
	return sub, nil
}
