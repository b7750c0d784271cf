package bus

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrClosed is returned by Send and Broadcast after Close, and by
	// Hub.Join after Hub.Close.
	ErrClosed = errors.New("bus: transport closed")
	// ErrInvalidToken is wrapped, with the offending value, when a cluster
	// name, endpoint id or kind is empty, contains '.', '*', '>',
	// whitespace or a control character, or is not valid UTF-8, or when a
	// kind is the reserved "to".
	ErrInvalidToken = errors.New("bus: invalid subject token")
)

// Role says which traffic an endpoint receives: replicas receive broadcasts
// and their point-to-point messages, clients only the latter.
type Role int

const (
	RoleReplica Role = iota + 1
	RoleClient
)

func (r Role) String() string {
	switch r {
	case RoleReplica:
		return "replica"
	case RoleClient:
		return "client"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

func (r Role) valid() bool { return r == RoleReplica || r == RoleClient }

// Message is one delivery.
type Message struct {
	From string // sender id as named in the subject (authentication is a later layer)
	Kind string
	Data []byte // owned by the receiver
}

// Handler receives deliveries. It must not block for long: the transport
// calls it from its delivery goroutine(s), and while it runs nothing else
// is delivered to this endpoint. Calls for one transport are serialised
// (never concurrent), and messages from one sender to one receiver arrive in
// the order they were sent on the same path: point-to-point messages in
// order among themselves, broadcasts among themselves. (NATSTransport may
// deliver a broadcast and a point-to-point message in either order.) A
// Handler may call Send and Broadcast, but must not call Close on its own
// transport: Close waits for the Handler to return.
type Handler func(Message)

// Transport is one endpoint's view of the cluster. Send, Broadcast, ID and
// Close are safe for concurrent use. Send and Broadcast do not retain data:
// the caller may reuse it as soon as they return.
type Transport interface {
	// ID is this endpoint's id, which receivers see as Message.From.
	ID() string
	// Send delivers data to the endpoint to, if it exists; a message to an
	// unknown endpoint, or to oneself, is dropped silently.
	Send(to, kind string, data []byte) error
	// Broadcast delivers data to every replica except the sender.
	Broadcast(kind string, data []byte) error
	// Close stops delivery; once it returns the Handler is not running and
	// will not be called again. It is idempotent; afterwards Send and
	// Broadcast return ErrClosed.
	Close() error
}

// Stats is a snapshot of an endpoint's counters.
type Stats struct {
	Sent     uint64 // successful Send and Broadcast calls (a broadcast counts once)
	Received uint64 // messages handed to the Handler
	Dropped  uint64 // discarded by this endpoint: see the implementations
}

// counters are the live, atomically updated Stats.
type counters struct {
	sent, received, dropped atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{Sent: c.sent.Load(), Received: c.received.Load(), Dropped: c.dropped.Load()}
}

// checkEndpoint validates what every constructor needs.
func checkEndpoint(cluster, id string, role Role, h Handler) error {
	if err := checkToken("cluster", cluster); err != nil {
		return err
	}
	if err := checkToken("id", id); err != nil {
		return err
	}
	if !role.valid() {
		return fmt.Errorf("bus: invalid role %v", role)
	}
	if h == nil {
		return errors.New("bus: nil handler")
	}
	return nil
}
