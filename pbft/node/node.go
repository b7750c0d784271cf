// Package node runs one PBFT replica: it owns a pbft.Replica on one goroutine and
// connects it to the bus, a clock and the key-value application. Every input (protocol
// messages, gateway queries, ticks, fault switches) goes through one ordered queue, so
// the replica sees one sequence of events, as the deterministic core requires.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/kv"
)

// ErrConfig reports an invalid node configuration.
var ErrConfig = errors.New("node: invalid config")

// Config configures a Node.
type Config struct {
	// ID is this replica's id; NodeIDs lists all replicas in order (primary of view v is
	// NodeIDs[v mod n]).
	ID      string
	NodeIDs []string
	// Protocol holds the protocol settings; ID, N and App are filled in by New.
	Protocol pbft.Config
	// Tick is the length of one protocol tick.
	Tick time.Duration
	// Fault is a built-in Byzantine behaviour, for tests and demos.
	Fault Fault
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Tick <= 0 {
		return fmt.Errorf("%w: tick must be positive", ErrConfig)
	}
	seen := map[string]bool{}
	for _, id := range c.NodeIDs {
		if id == "" || seen[id] {
			return fmt.Errorf("%w: node ids must be distinct and non-empty: %q", ErrConfig, c.NodeIDs)
		}
		seen[id] = true
	}
	if !seen[c.ID] {
		return fmt.Errorf("%w: %q is not one of the node ids %q", ErrConfig, c.ID, c.NodeIDs)
	}
	return nil
}

// Node is one running replica.
type Node struct {
	cfg   Config
	log   *slog.Logger
	ids   []string
	index map[string]int
	self  int
	r     *pbft.Replica
	app   *kv.Store
	tr    bus.Transport

	inbox inbox
	fault atomic.Value // Fault

	waiters  []*waiter
	submits  map[submitKey][]*waiter
	stats    Stats
	statsMu  sync.Mutex
	closedCh chan struct{}
}

// Stats counts what the node did with messages.
type Stats struct {
	In       map[string]uint64 // protocol messages stepped, by kind
	Out      map[string]uint64 // protocol messages sent, by kind
	Rejected map[string]uint64 // messages dropped, by reason
}

type submitKey struct {
	client string
	t      uint64
}

// New builds a node; connect creates its transport with the handler the node needs.
func New(cfg Config, connect func(bus.Handler) (bus.Transport, error)) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:      cfg,
		log:      cfg.Logger,
		ids:      cfg.NodeIDs,
		index:    make(map[string]int, len(cfg.NodeIDs)),
		app:      kv.New(),
		submits:  make(map[submitKey][]*waiter),
		closedCh: make(chan struct{}),
		stats:    Stats{In: map[string]uint64{}, Out: map[string]uint64{}, Rejected: map[string]uint64{}},
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	for i, id := range cfg.NodeIDs {
		n.index[id] = i
	}
	n.self = n.index[cfg.ID]
	pc := cfg.Protocol
	pc.ID, pc.N, pc.App = n.self, len(cfg.NodeIDs), n.app
	r, err := pbft.NewReplica(pc)
	if err != nil {
		return nil, err
	}
	n.r = r
	f := cfg.Fault
	if f == "" {
		f = FaultNone
	}
	n.fault.Store(f)
	n.inbox.init()
	tr, err := connect(n.receive)
	if err != nil {
		return nil, err
	}
	n.tr = tr
	return n, nil
}

// ID returns the replica's id.
func (n *Node) ID() string { return n.cfg.ID }

// receive is the bus handler: it only queues, so the bus is never blocked by the protocol.
func (n *Node) receive(m bus.Message) { n.inbox.push(item{msg: m}) }

// Do runs fn on the node's goroutine, between two events, and waits for it.
func (n *Node) Do(ctx context.Context, fn func(r *pbft.Replica)) error {
	done := make(chan struct{})
	n.inbox.push(item{fn: func() { fn(n.r); close(done) }})
	select {
	case <-done:
		return nil
	case <-n.closedCh:
		return errors.New("node: stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetFault switches the node's built-in behaviour.
func (n *Node) SetFault(f Fault) { n.inbox.push(item{fn: func() { n.fault.Store(f) }}) }

// Fault returns the current behaviour.
func (n *Node) Fault() Fault { return n.fault.Load().(Fault) }

// Stats returns a copy of the node's counters.
func (n *Node) Stats() Stats {
	n.statsMu.Lock()
	defer n.statsMu.Unlock()
	cp := Stats{In: map[string]uint64{}, Out: map[string]uint64{}, Rejected: map[string]uint64{}}
	for k, v := range n.stats.In {
		cp.In[k] = v
	}
	for k, v := range n.stats.Out {
		cp.Out[k] = v
	}
	for k, v := range n.stats.Rejected {
		cp.Rejected[k] = v
	}
	return cp
}

func (n *Node) count(m map[string]uint64, key string) {
	n.statsMu.Lock()
	m[key]++
	n.statsMu.Unlock()
}

// Run processes events until ctx ends, then closes the transport.
func (n *Node) Run(ctx context.Context) error {
	defer close(n.closedCh)
	defer n.tr.Close()
	ticker := time.NewTicker(n.cfg.Tick)
	defer ticker.Stop()
	var batch []item
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n.inbox.wake:
			batch = n.inbox.drain(batch[:0])
			for i := range batch {
				n.handle(&batch[i])
				batch[i] = item{}
			}
		case <-ticker.C:
			if n.Fault() != FaultCrash {
				n.r.Tick()
			}
			n.expireWaiters(time.Now())
		}
		n.r.Propose()
		n.flush()
		n.checkWaiters()
	}
}

func (n *Node) handle(it *item) {
	if it.fn != nil {
		it.fn()
		return
	}
	m := it.msg
	if m.Kind == KindQuery {
		q, err := DecodeQuery(m.Data)
		if err != nil {
			n.count(n.stats.Rejected, "bad query")
			return
		}
		n.handleQuery(m.From, q)
		return
	}
	if n.Fault() == FaultCrash {
		return
	}
	kind, ok := pbft.KindFromString(m.Kind)
	if !ok {
		n.count(n.stats.Rejected, "unknown kind")
		return
	}
	msg, err := pbft.Unmarshal(m.Data)
	if err != nil || msg.Kind() != kind {
		n.count(n.stats.Rejected, "malformed")
		return
	}
	from, ok := n.index[m.From]
	if !ok {
		req, isReq := msg.(*pbft.Request)
		if !isReq || req.Gateway != m.From {
			n.count(n.stats.Rejected, "unknown sender")
			return
		}
		from = pbft.FromClient
	}
	n.count(n.stats.In, m.Kind)
	if err := n.r.Step(from, msg); err != nil {
		n.count(n.stats.Rejected, "protocol")
		n.log.Debug("rejected", "kind", m.Kind, "from", m.From, "err", err)
	}
}

// flush sends what the replica produced, through the node's fault behaviour.
func (n *Node) flush() {
	if !n.r.HasReady() {
		return
	}
	rd := n.r.Ready()
	if rd.ViewChanged {
		n.log.Info("view", "view", n.r.View(), "active", n.r.ViewActive(), "primary", n.ids[n.r.Primary()])
	}
	f := n.Fault()
	if f == FaultCrash || f == FaultSilent {
		return
	}
	for _, o := range rd.Messages {
		n.sendOut(o, f)
	}
}

func (n *Node) sendOut(o pbft.Outbound, f Fault) {
	m := o.Msg
	if f == FaultEquivocate {
		m = corruptVote(m)
		if pp, ok := m.(*pbft.PrePrepare); ok && o.To == pbft.Broadcast {
			n.equivocate(pp)
			return
		}
	}
	kind := m.Kind().String()
	data := pbft.Marshal(m)
	var err error
	switch o.To {
	case pbft.Broadcast:
		err = n.tr.Broadcast(kind, data)
	case pbft.ToGateway:
		err = n.tr.Send(o.Gateway, kind, data)
	default:
		err = n.tr.Send(n.ids[o.To], kind, data)
	}
	if err != nil {
		n.log.Debug("send failed", "kind", kind, "err", err)
		return
	}
	n.count(n.stats.Out, kind)
}

// equivocate sends half the backups the real pre-prepare and the other half a conflicting
// one for the same view and number.
func (n *Node) equivocate(pp *pbft.PrePrepare) {
	fork := forkPrePrepare(pp)
	real, forged := pbft.Marshal(pp), pbft.Marshal(fork)
	for i, id := range n.ids {
		if i == n.self {
			continue
		}
		data := real
		if i%2 == 0 {
			data = forged
		}
		_ = n.tr.Send(id, pp.Kind().String(), data)
	}
}
