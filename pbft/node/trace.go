package node

import (
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/trace"
)

// Tracing (Config.Trace, PBFT_TRACE=on) publishes what the replica does as trace events
// (package trace) on the bus's trace subject. Everything here runs on the node's
// goroutine; when tracing is off n.trace is nil and each hook is one comparison. The
// hooks in node.go are:
//
//	Run:        defer n.startTrace()()    the publisher lives as long as the loop
//	handle:     n.traceRecv(m.From, msg)  after an authenticated message was stepped
//	handleQuery n.traceRecv(from, req)    after a client's request was stepped
//	flush:      n.traceProgress()         certificates, execution, checkpoints, views
//	sendOut:    n.traceSent(o, m)         after a message was handed to the bus
//
// Prepared and committed are derived from the core's per-number status (Replica.Status)
// for the numbers the stepped messages touched, so the core needs no trace hooks.

// traceBeat is the period of a replica's summary event.
const traceBeat = 500 * time.Millisecond

// maxTracePhases bounds the per-number phases remembered between stable checkpoints.
const maxTracePhases = 1 << 14

// maxTraceExecuted is the longest run of executed numbers reported one by one; a longer
// jump (state transfer) is reported as one Transfer event.
const maxTraceExecuted = 256

type tracer struct {
	p   *trace.Publisher
	now func() time.Time

	phase   map[uint64]pbft.Phase // highest phase reported per number, in this view
	touched []touch               // numbers stepped since the last traceProgress

	view     uint64
	active   bool
	lastExec uint64
	stable   uint64
	nextBeat time.Time
}

type touch struct {
	seq, view uint64
	digest    trace.Short
}

// startTrace starts the publisher if tracing is on and the transport can carry trace
// events; the function it returns stops it.
func (n *Node) startTrace() func() {
	if !n.cfg.Trace {
		return func() {}
	}
	tp, ok := n.tr.(bus.TracePublisher)
	if !ok {
		n.log.Warn("tracing is on but the transport cannot publish trace events")
		return func() {}
	}
	p := trace.NewPublisher(tp.PublishTrace, trace.Options{})
	stop := p.Start()
	n.trace = &tracer{p: p, now: time.Now, phase: map[uint64]pbft.Phase{},
		view: n.r.View(), active: n.r.ViewActive(), lastExec: n.r.LastExecuted(), stable: n.r.StableCheckpoint()}
	n.traceBeat(time.Now())
	return func() {
		n.traceBeat(time.Now())
		n.trace = nil
		stop()
	}
}

// emit stamps e with the time and this replica and queues it.
func (n *Node) emit(e trace.Event) {
	e.T = n.trace.now().UnixNano()
	e.Node = n.cfg.ID
	n.trace.p.Emit(e)
}

// traceMsg fills in what a message says about itself; ok is false for messages that are
// not traced (status messages, which every replica sends every few ticks) or whose
// number is not sampled now.
func (n *Node) traceMsg(e *trace.Event, m pbft.Message) (ok bool) {
	e.Kind = m.Kind().String()
	switch v := m.(type) {
	case *pbft.Request:
		e.Client = v.Client
		// Requests carry no number yet: traced only while every round is.
		return n.trace.p.SampleEvery() == 1
	case *pbft.PrePrepare:
		e.View, e.Seq, e.Digest, e.Count = v.View, v.Seq, trace.ShortOf(v.Digest), len(v.Batch)
		if len(v.Batch) > 0 {
			e.Client = v.Batch[0].Client
		}
	case *pbft.Prepare:
		e.View, e.Seq, e.Digest = v.View, v.Seq, trace.ShortOf(v.Digest)
	case *pbft.Commit:
		e.View, e.Seq, e.Digest = v.View, v.Seq, trace.ShortOf(v.Digest)
	case *pbft.Reply:
		e.View, e.Seq, e.Client = v.View, v.Seq, v.Client
	case *pbft.Checkpoint:
		e.Seq, e.Digest = v.Seq, trace.ShortOf(v.State)
		e.View = n.r.View()
		return true
	case *pbft.ViewChange:
		e.View = v.NewView
		return true
	case *pbft.NewView:
		e.View, e.Count = v.View, len(v.PrePrepares)
		return true
	case *pbft.Fetch:
		e.Seq, e.View = v.Seq, n.r.View()
		return true
	case *pbft.State:
		e.Seq, e.View = v.Seq, n.r.View()
		return true
	default:
		return false
	}
	return n.trace.p.Sampled(e.Seq)
}

// traceRecv reports a message from from that was stepped into the replica.
func (n *Node) traceRecv(from string, m pbft.Message) {
	if n.trace == nil {
		return
	}
	e := trace.Event{Type: trace.Recv, From: from, To: n.cfg.ID}
	if !n.traceMsg(&e, m) {
		return
	}
	n.emit(e)
	switch m.(type) {
	case *pbft.PrePrepare, *pbft.Prepare, *pbft.Commit:
		n.trace.touched = append(n.trace.touched, touch{seq: e.Seq, view: e.View, digest: e.Digest})
	}
}

// traceSent reports a message handed to the bus.
func (n *Node) traceSent(o pbft.Outbound, m pbft.Message) {
	if n.trace == nil {
		return
	}
	e := trace.Event{Type: trace.Send, From: n.cfg.ID}
	switch members := n.r.MembersOf(o.Conf); {
	case o.To == pbft.ToGateway:
		e.To = o.Gateway
	case o.Peer != "":
		e.To = o.Peer
	case o.To == pbft.Broadcast:
		e.To = trace.Broadcast
	case o.To >= 0 && o.To < len(members):
		e.To = members[o.To] // of the message's configuration, maybe not the current one
	}
	if !n.traceMsg(&e, m) {
		return
	}
	if f := n.Fault(); f != FaultNone {
		e.Fault = string(f)
	}
	n.emit(e)
	switch m.(type) {
	case *pbft.PrePrepare, *pbft.Prepare, *pbft.Commit:
		n.trace.touched = append(n.trace.touched, touch{seq: e.Seq, view: e.View, digest: e.Digest})
	}
}

// traceProgress reports what changed in the replica since the last call: certificates
// of the numbers that messages touched, execution, a stable checkpoint, a view change,
// and every traceBeat a summary.
func (n *Node) traceProgress() {
	t := n.trace
	if t == nil {
		return
	}
	r := n.r
	if v, a := r.View(), r.ViewActive(); v != t.view || a != t.active {
		t.view, t.active = v, a
		if a {
			n.emit(trace.Event{Type: trace.NewView, View: v, Primary: n.ids[r.Primary()], Active: true})
			// The new view re-runs the protocol for the numbers it re-proposes.
			clear(t.phase)
		} else {
			n.emit(trace.Event{Type: trace.ViewChange, View: v})
		}
	}
	for _, tc := range t.touched {
		old := t.phase[tc.seq]
		if old >= pbft.PhaseCommitted || tc.view != r.View() {
			continue
		}
		st := r.Status(tc.seq)
		if st.Phase <= old {
			continue
		}
		if st.Phase >= pbft.PhasePrepared && old < pbft.PhasePrepared {
			n.emit(trace.Event{Type: trace.Prepared, View: tc.view, Seq: tc.seq, Digest: tc.digest, Count: len(st.PreparesFrom)})
		}
		if st.Phase >= pbft.PhaseCommitted {
			n.emit(trace.Event{Type: trace.Committed, View: tc.view, Seq: tc.seq, Digest: tc.digest, Count: len(st.CommitsFrom)})
		}
		if len(t.phase) < maxTracePhases {
			t.phase[tc.seq] = st.Phase
		}
	}
	t.touched = t.touched[:0]
	if le := r.LastExecuted(); le != t.lastExec {
		if le > t.lastExec && le-t.lastExec <= maxTraceExecuted {
			for s := t.lastExec + 1; s <= le; s++ {
				if t.p.Sampled(s) {
					n.emit(trace.Event{Type: trace.Executed, View: r.View(), Seq: s})
				}
			}
		} else {
			n.emit(trace.Event{Type: trace.Transfer, View: r.View(), Seq: le})
		}
		t.lastExec = le
	}
	if sc := r.StableCheckpoint(); sc != t.stable {
		t.stable = sc
		n.emit(trace.Event{Type: trace.Checkpoint, View: r.View(), Seq: sc})
		for s := range t.phase {
			if s <= sc {
				delete(t.phase, s)
			}
		}
	}
	if now := t.now(); !now.Before(t.nextBeat) {
		n.traceBeat(now)
	}
}

// traceBeat emits the replica's summary.
func (n *Node) traceBeat(now time.Time) {
	t, r := n.trace, n.r
	t.nextBeat = now.Add(traceBeat)
	st := t.p.Stats()
	e := trace.Event{Type: trace.Replica, View: r.View(), Primary: n.ids[r.Primary()], Active: r.ViewActive(),
		LastExecuted: r.LastExecuted(), Stable: r.StableCheckpoint(), Dropped: st.Dropped, SampleEvery: st.SampleEvery}
	if f := n.Fault(); f != FaultNone {
		e.Fault = string(f)
	}
	n.emit(e)
}
