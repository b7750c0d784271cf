package pbft

import (
	"fmt"
	"sort"
)

// viewChangeState holds the view-change timer and the view-change messages received.
type viewChangeState struct {
	base    int // ViewChangeTicks
	timeout int // current timeout: doubles with each view that fails to start
	timer   int // ticks left; 0 when not running
	// received[v][i] is replica i's VIEW-CHANGE for view v (views above the current one,
	// or the one being changed to).
	received map[uint64]map[int]*ViewChange
	mine     *ViewChange // this replica's VIEW-CHANGE for the view being changed to
	accepted *NewView    // the NEW-VIEW that started the current view, resent to laggards
	changes  uint64      // views entered after view 0
	// wanted and fetched serve a replica that needs batches view-change messages named
	// by digest only (a new primary re-proposing them, a backup taking a NEW-VIEW): the
	// digests it asked peers for, with their sequence numbers, and the batches that came
	// back. Both are cleared when a view starts.
	wanted  map[Digest]uint64
	fetched map[Digest][]*Request
	// pendingNV is a NEW-VIEW that named batches this backup lacks by digest only; it is
	// taken again when they come.
	pendingNV *NewView
}

// nullDigest is the digest of the empty batch, the null request.
var nullDigest = BatchDigest(nil)

// batchSize is about what a batch adds to a message.
func batchSize(b []*Request) int {
	n := 0
	for _, r := range b {
		n += RequestSize(r)
	}
	return n
}

// RequestSize is about what r adds to a message (a pre-prepare's batch, a client's
// requests message): its variable fields, and a margin for its numbers, flags and
// lengths.
func RequestSize(r *Request) int {
	return len(r.Gateway) + len(r.Client) + len(r.Op) + len(r.Auth) + 32
}

// newViewChangeState returns the state of a replica in view 0: no timer running, the
// timeout at its base.
func newViewChangeState(base int) *viewChangeState {
	return &viewChangeState{base: base, timeout: base, received: make(map[uint64]map[int]*ViewChange)}
}

// ViewChanges returns how many views this replica has entered after view 0.
func (r *Replica) ViewChanges() uint64 { return r.vc.changes }

// startViewChange stops accepting normal-case messages of the current view and sends
// VIEW-CHANGE for view v.
func (r *Replica) startViewChange(v uint64) {
	if v <= r.view && !r.viewActive || v < r.view {
		return
	}
	r.view, r.viewActive = v, false
	r.barrier = 0 // a new view's pre-prepares raise it again if they carry the reconfiguration
	r.nextReady.ViewChanged = true
	r.vc.timer = 0
	m := &ViewChange{NewView: v, Replica: r.id, LowWater: r.lowWater}
	budget := r.cfg.ViewChangeBatchBytes
	seqs := make([]uint64, 0, len(r.checkpoints.own))
	for s := range r.checkpoints.own {
		if s >= r.lowWater {
			seqs = append(seqs, s)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, s := range seqs {
		m.Checkpoints = append(m.Checkpoints, CheckpointClaim{Seq: s, State: r.checkpoints.own[s]})
	}
	for _, s := range r.sortedSeqs() {
		e := r.log[s]
		if !r.inWindow(s) {
			continue
		}
		if e.pset != nil {
			p := *e.pset
			if size := batchSize(p.Batch); size > budget {
				p.Batch = nil // named by digest; a new primary without it fetches it
			} else {
				budget -= size
			}
			m.P = append(m.P, p)
		}
		m.Q = append(m.Q, e.qset...)
	}
	r.vc.mine = m
	r.persist(m)
	r.broadcast(m)
	r.recordViewChange(m)
	r.afterViewChangeVote(v)
}

// sortedSeqs returns the sequence numbers in the log in ascending order.
func (r *Replica) sortedSeqs() []uint64 {
	seqs := make([]uint64, 0, len(r.log))
	for s := range r.log {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs
}

// recordViewChange keeps m unless its sender already has a view-change for that view:
// the first one counts.
func (r *Replica) recordViewChange(m *ViewChange) {
	byRep := r.vc.received[m.NewView]
	if byRep == nil {
		byRep = make(map[int]*ViewChange)
		r.vc.received[m.NewView] = byRep
	}
	if _, ok := byRep[m.Replica]; !ok {
		byRep[m.Replica] = m
	}
}

// validViewChange checks what a VIEW-CHANGE claims is well formed; its signature was
// checked by the driver before Step. A prepared entry's batch, where it is there, must
// match its digest; past ViewChangeBatchBytes the sender leaves batches out, and inside
// a NEW-VIEW (stripped) every batch is left out.
func (r *Replica) validViewChange(m *ViewChange, stripped bool) error {
	L := r.cfg.LogWindow
	if m.Replica < 0 || m.Replica >= r.q.N || !r.checkpointAt(m.LowWater) || m.NewView == 0 {
		return fmt.Errorf("%w: malformed view-change", ErrRejected)
	}
	for _, c := range m.Checkpoints {
		if !r.checkpointAt(c.Seq) || c.Seq < m.LowWater {
			return fmt.Errorf("%w: view-change checkpoint %d", ErrRejected, c.Seq)
		}
	}
	seen := make(map[uint64]bool, len(m.P))
	for _, p := range m.P {
		if p.Seq <= m.LowWater || p.Seq > m.LowWater+L || p.View >= m.NewView || seen[p.Seq] {
			return fmt.Errorf("%w: view-change prepared entry %d", ErrRejected, p.Seq)
		}
		seen[p.Seq] = true
		if stripped {
			if len(p.Batch) > 0 {
				return fmt.Errorf("%w: new-view holds a view-change with batches", ErrRejected)
			}
			continue
		}
		if len(p.Batch) == 0 && p.Digest != nullDigest {
			continue // left out, named by its digest
		}
		if BatchDigest(p.Batch) != p.Digest {
			return fmt.Errorf("%w: view-change batch does not match digest at %d", ErrRejected, p.Seq)
		}
		for _, req := range p.Batch {
			if err := validRequest(req); err != nil {
				return err
			}
		}
	}
	for _, q := range m.Q {
		if q.Seq <= m.LowWater || q.Seq > m.LowWater+L || q.View >= m.NewView {
			return fmt.Errorf("%w: view-change pre-prepared entry %d", ErrRejected, q.Seq)
		}
	}
	return nil
}

// stepViewChange takes a peer's VIEW-CHANGE: a sender behind gets the NEW-VIEW of the
// current view; otherwise it is recorded, f+1 asking for later views make this replica
// join, and the new primary tries to start the view.
func (r *Replica) stepViewChange(from int, m *ViewChange) error {
	if m.Replica != from {
		return fmt.Errorf("%w: view-change names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	if m.NewView < r.view || (m.NewView == r.view && r.viewActive) {
		if r.viewActive && r.vc.accepted != nil {
			r.send(from, r.vc.accepted) // the sender is behind: show it the current view
		}
		return nil
	}
	if m.NewView > r.view+uint64(4*r.q.N) {
		return fmt.Errorf("%w: view-change for view %d, far ahead of %d", ErrRejected, m.NewView, r.view)
	}
	if err := r.validViewChange(m, false); err != nil {
		return err
	}
	r.recordViewChange(m)
	// Join rule: f+1 replicas asking for views above ours cannot all be faulty.
	above := make(map[int]uint64)
	for v, byRep := range r.vc.received {
		if v > r.view {
			for rep := range byRep {
				if old, ok := above[rep]; !ok || v < old {
					above[rep] = v
				}
			}
		}
	}
	if len(above) >= r.q.Weak() {
		smallest := ^uint64(0)
		for _, v := range above {
			if v < smallest {
				smallest = v
			}
		}
		if smallest > r.view {
			r.startViewChange(smallest)
			return nil
		}
	}
	r.afterViewChangeVote(m.NewView)
	return nil
}

// afterViewChangeVote runs when a view-change for view v was recorded: the primary of v
// tries to start it; every replica starts its new-view timer once 2f+1 asked for v.
func (r *Replica) afterViewChangeVote(v uint64) {
	if r.viewActive || v != r.view {
		return
	}
	if len(r.vc.received[v]) >= r.q.Commit() && r.vc.timer == 0 {
		r.vc.timer = r.vc.timeout
	}
	if r.q.Primary(v) == r.id {
		r.tryNewView()
	}
}

// retransmitViewChange helps a peer that is in an older view, or stuck changing view.
func (r *Replica) retransmitViewChange(to int) {
	switch {
	case r.viewActive && r.vc.accepted != nil:
		r.send(to, r.vc.accepted)
	case !r.viewActive && r.vc.mine != nil:
		r.send(to, r.vc.mine)
	}
}
