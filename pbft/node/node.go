// Package node runs one PBFT replica: it owns a pbft.Replica on one goroutine and
// connects it to the bus, a clock and the replicated application (any pbft.Application). Every input (protocol
// messages, gateway queries, ticks, fault switches) goes through one ordered queue, so
// the replica sees one sequence of events, as the deterministic core requires.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
)

// Node is one running replica.
type Node struct {
	cfg   Config
	log   *slog.Logger
	ids   []string
	index map[string]int
	self  int
	r     *pbft.Replica
	app   pbft.Application
	tr    bus.Transport
	keys  *auth.Keyring
	logs  rateLog

	inbox inbox
	fault atomic.Value // Fault

	waiters  []*waiter
	submits  map[submitKey][]*waiter
	stats    Stats
	statsMu  sync.Mutex
	closedCh chan struct{}
	wal      durableLog   // durable.go; nil without a data dir
	dur      durableState // durable.go
	failed   error        // a durable-log failure: the node stops
	// walCounts is the log writer's counters, for Metrics on any goroutine; nil without
	// a data dir.
	walCounts atomic.Pointer[walCounters]
	trace     *tracer     // trace.go; nil unless tracing
	metrics   nodeMetrics // metrics.go
	// reissues is the replica's RefusedReissues already reported.
	reissues uint64
	// keysVersion is the replica's configuration version the keyring follows, keysRetry
	// when to try again after a key was missing (keysync.go).
	keysVersion uint64
	keysRetry   time.Time
	// wire and env are the node goroutine's buffers for a message it sends and its
	// envelope, reused: the transport copies what it is given.
	wire, env []byte
	// replies groups a Ready's replies by gateway (replies.go), reused.
	replies replyGroups
	groups  outGroups
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
	if cfg.App == nil {
		return nil, fmt.Errorf("%w: replica %s has no application", ErrConfig, cfg.ID)
	}
	n := &Node{
		cfg:      cfg,
		keys:     cfg.Keys,
		log:      cfg.Logger,
		ids:      cfg.NodeIDs,
		index:    make(map[string]int, len(cfg.NodeIDs)),
		app:      cfg.App,
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
	pc.Members, pc.Configuration, pc.JoinFrom, pc.Join = cfg.NodeIDs, cfg.Configuration, cfg.JoinFrom, cfg.Join
	pc.Durable = cfg.DataDir != ""
	pc.Signer = keySigner{n}
	r, err := pbft.NewReplica(pc)
	if err != nil {
		return nil, err
	}
	n.r = r
	if cfg.DataDir != "" {
		if err := n.openDurable(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	f := cfg.Fault
	if f == "" {
		f = FaultNone
	}
	n.fault.Store(f)
	n.inbox.init()
	tr, err := connect(n.receive)
	if err != nil {
		n.closeDurable()
		return nil, err
	}
	n.tr = tr
	var maxPayload int64 // 0: the bus states no limit
	if b, ok := tr.(interface{ MaxPayload() int64 }); ok {
		maxPayload = b.MaxPayload()
	}
	// What the replica sends must fit the bus: its bundles, batches and state chunks.
	n.groups.limits(maxPayload)
	r.FitBus(maxPayload)
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
	defer n.closeDurable()
	defer n.tr.Close()
	defer n.startTrace()()
	n.startDurable()
	ticker := time.NewTicker(n.cfg.Tick)
	defer ticker.Stop()
	var batch []item
	var batching batchTimer
	defer batching.stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-batching.C():
			batching.fired()
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
		n.propose(&batching)
		n.flush()
		if n.failed != nil {
			n.log.Error("stopping: cannot keep the durable log", "err", n.failed)
			return n.failed
		}
		n.checkWaiters()
		n.metrics.noteLoop(n, time.Now())
	}
}

func (n *Node) handle(it *item) {
	if it.fn != nil {
		it.fn()
		return
	}
	m := it.msg
	bus.Stamp(bus.StageHandle, m.Kind, m.From)
	payload, err := n.keys.Open(m.From, m.Kind, m.Data)
	if err != nil {
		n.reject(rejectReason(err), m.From, m.Kind, err)
		return
	}
	if m.Kind == KindQuery {
		q, err := DecodeQuery(payload)
		if err != nil {
			n.reject(RejectMalformed, m.From, m.Kind, err)
			return
		}
		n.handleQuery(m.From, q)
		return
	}
	if n.Fault() == FaultCrash {
		return
	}
	if m.Kind == pbft.KindRequests {
		n.handleRequests(m.From, payload)
		return
	}
	if m.Kind == KindBundle {
		n.handleBundle(m.From, payload)
		return
	}
	kind, ok := pbft.KindFromString(m.Kind)
	if !ok {
		n.reject(RejectMalformed, m.From, m.Kind, errors.New("unknown kind"))
		return
	}
	n.handleMessage(m.From, m.Kind, kind, payload)
}

// handleMessage decodes, places and steps one opened protocol message from sender: a
// bus message of kind name (kind), or, with name "", an element of a bundle, which must
// be a replica's (framed) and whose kind the message itself says.
func (n *Node) handleMessage(sender, name string, kind pbft.Kind, payload []byte) {
	bundled := name == ""
	conf, framed, payload, err := unframe(payload)
	if err == nil && bundled && !framed {
		err = errors.New("a bundle carries replicas' messages only")
	}
	if err != nil {
		n.reject(RejectMalformed, sender, orBundle(name), err)
		return
	}
	msg, err := pbft.Unmarshal(payload)
	if err == nil && bundled {
		kind, name = msg.Kind(), msg.Kind().String()
	}
	if err != nil || msg.Kind() != kind {
		n.reject(RejectMalformed, sender, orBundle(name), err)
		return
	}
	var from int
	if framed {
		// A replica's message: its sender's index in the configuration it names.
		from = slices.Index(n.r.MembersOf(conf), sender)
		switch msg := msg.(type) {
		case *pbft.Chain:
			if from < 0 {
				from = pbft.FromAnyone // a chain certifies itself, whoever relays it
			}
		case *pbft.AskAdmission:
			// A joiner not admitted yet is in no configuration this replica may know.
			if msg.Joiner != sender {
				n.reject(RejectSenderMismatch, sender, name, errors.New("an admission question names another joiner"))
				return
			}
			from = pbft.FromAnyone
		}
		if from < 0 && from != pbft.FromAnyone {
			n.reject(RejectUnknownSender, sender, name, fmt.Errorf("not a member of configuration %d", conf))
			return
		}
	} else {
		req, isReq := msg.(*pbft.Request)
		if !isReq || req.Gateway != sender {
			n.reject(RejectSenderMismatch, sender, name, errors.New("a client may only send its own requests"))
			return
		}
		from, conf = pbft.FromClient, n.r.Configuration()
	}
	if err := n.verifyInner(msg); err != nil {
		n.reject(rejectReason(err), sender, name, err)
		return
	}
	n.step(conf, from, sender, name, msg)
}

// step steps an authenticated message (its inner authenticators checked too) of
// configuration conf from sender, replica index from or pbft.FromClient.
func (n *Node) step(conf uint64, from int, sender, kind string, msg pbft.Message) {
	if req, ok := msg.(*pbft.Request); ok && req.ReadOnly {
		n.stepReadOnly(from, sender, req)
		return
	}
	n.count(n.stats.In, kind)
	n.metrics.noteStepped(from, msg, time.Now())
	err := n.r.StepIn(conf, from, msg)
	bus.Stamp(bus.StageStepped, kind, sender)
	if c := n.r.RefusedReissues(); c > n.reissues {
		// More than f faulty replicas: say so loudly, whichever path it came by.
		n.reissues = c
		n.reject(RejectReissue, sender, kind, errors.New("a pre-prepare for an executed number with another digest"))
	} else if err != nil {
		n.count(n.stats.Rejected, RejectProtocol)
		n.log.Debug("rejected", "kind", kind, "from", sender, "err", err)
	}
	n.traceRecv(sender, msg)
}

// reject counts a dropped message under reason and logs it, rate-limited.
func (n *Node) reject(reason, from, kind string, err error) {
	n.count(n.stats.Rejected, reason)
	if n.logs.allow(reason, time.Now()) {
		n.log.Warn("dropped message", "reason", reason, "from", from, "kind", kind, "err", err)
	}
}

// flush sends what the replica produced, through the node's fault behaviour.
func (n *Node) flush() {
	n.traceProgress()
	n.syncKeys()
	if !n.r.HasReady() {
		return
	}
	rd := n.r.Ready()
	n.metrics.noteReady(&rd, time.Now())
	if rd.StateInstalled {
		n.log.Info("state installed", "last_executed", n.r.LastExecuted(), "configuration", n.r.Configuration(), "member", n.r.IsMember())
	}
	if rd.ViewChanged || rd.StateInstalled {
		n.refreshMembers()
	}
	if rd.ViewChanged {
		n.log.Info("view", "view", n.r.View(), "active", n.r.ViewActive(), "primary", n.ids[n.r.Primary()])
	}
	f := n.Fault()
	if n.persist(&rd, f) {
		return // durable.go sends them once their records are durable
	}
	n.send(rd.Messages, f)
}

// send hands one Ready's messages to the transport, through the node's fault behaviour:
// replies grouped by gateway, and the rest grouped by destination, so that what goes to
// one replica, or to every replica, in one Ready travels as one bundle.
func (n *Node) send(msgs []pbft.Outbound, f Fault) {
	defer n.r.Recycle(msgs) // the transport copied what it sent
	if f == FaultCrash || f == FaultSilent {
		return
	}
	replies, groups := &n.replies, &n.groups
	for _, o := range msgs {
		switch {
		case o.To == pbft.ToGateway:
			replies.add(n.forge(o))
		case f != FaultNone:
			n.sendOut(o, f) // a faulty replica's forgeries go one by one
		default:
			if d, ok := n.destOf(o); ok && !groups.add(d, o) {
				n.sendOut(o, f)
			}
		}
	}
	n.sendGroups(groups)
	groups.reset()
	n.sendReplies(replies, f)
	replies.reset()
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
	if o.To == pbft.ToGateway {
		n.sign(m)
		n.wire = pbft.AppendMessage(n.wire[:0], m) // replies carry their configuration inside
		n.env = n.keys.AppendSeal(n.env[:0], o.Gateway, m.Kind().String(), n.wire)
		err := n.tr.Send(o.Gateway, m.Kind().String(), n.env)
		n.trimBuffers()
		n.sent(o, m, err)
		return
	}
	d, ok := n.destOf(o)
	if !ok {
		return
	}
	n.wire = n.appendFramed(n.wire[:0], o.Conf, m)
	n.sent(o, m, n.publish(d, m.Kind().String(), n.wire))
}

// appendFramed signs m if it is evidence and appends it, framed with its configuration.
func (n *Node) appendFramed(b []byte, conf uint64, m pbft.Message) []byte {
	n.sign(m)
	return pbft.AppendMessage(appendFrameHeader(b, conf), m)
}

// publish seals payload for d and hands it to the transport.
func (n *Node) publish(d destination, kind string, payload []byte) error {
	var err error
	if d.broadcast {
		// Every replica on the bus hears a broadcast; each keeps what its configurations
		// name the sender in (joiners, the checkpoint that starts theirs).
		n.env = n.keys.AppendSeal(n.env[:0], "", kind, payload)
		err = n.tr.Broadcast(kind, n.env)
	} else {
		n.env = n.keys.AppendSeal(n.env[:0], d.to, kind, payload)
		err = n.tr.Send(d.to, kind, n.env)
	}
	n.trimBuffers()
	return err
}

// sent counts and traces m, sent as o, unless the transport refused it.
func (n *Node) sent(o pbft.Outbound, m pbft.Message, err error) {
	kind := m.Kind().String()
	if err != nil {
		n.log.Warn("send failed", "kind", kind, "err", err)
		return
	}
	n.count(n.stats.Out, kind)
	n.traceSent(o, m)
}

// maxKeptBuffer is the largest send buffer the node keeps between messages: a full
// bundle's, but not a rare larger one (a view change, a state chunk) for good.
const maxKeptBuffer = maxBundleBytes + 64<<10

func (n *Node) trimBuffers() {
	if cap(n.wire) > maxKeptBuffer {
		n.wire = nil
	}
	if cap(n.env) > maxKeptBuffer {
		n.env = nil
	}
}

// equivocate sends half the backups the real pre-prepare and the other half a conflicting
// one for the same view and number.
func (n *Node) equivocate(pp *pbft.PrePrepare) {
	fork := forkPrePrepare(pp)
	real, forged := pbft.Marshal(pp), pbft.Marshal(fork)
	kind := pp.Kind().String()
	for i, id := range n.ids {
		if i == n.self {
			continue
		}
		data := real
		if i%2 == 0 {
			data = forged
		}
		_ = n.tr.Send(id, kind, n.keys.Seal(id, kind, frame(n.r.Configuration(), data)))
	}
}
