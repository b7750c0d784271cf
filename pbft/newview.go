package pbft

import (
	"fmt"
	"sort"
)

// tryNewView makes the primary of the view being changed to send NEW-VIEW once the
// view-changes it holds decide every sequence number.
func (r *Replica) tryNewView() {
	byRep := r.vc.received[r.view]
	if len(byRep) < r.q.Commit() {
		return
	}
	vcs := make([]*ViewChange, 0, len(byRep))
	for _, m := range byRep {
		vcs = append(vcs, m)
	}
	sort.Slice(vcs, func(i, j int) bool { return vcs[i].Replica < vcs[j].Replica })
	d, ok := decideNewView(r.q, r.cfg.LogWindow, r.view, vcs)
	if !ok {
		return
	}
	if !r.fillBatches(d.prePrepares, vcs) {
		return // asked peers for batches it lacks; tried again when they come
	}
	// The view-changes go without their batches: the pre-prepares carry each batch the
	// new view re-proposes once, instead of once per view-change that prepared it.
	stripped := make([]*ViewChange, len(vcs))
	for i, m := range vcs {
		stripped[i] = StripBatches(m)
	}
	// So do the batches past ViewChangeBatchBytes: backups have most from the old view,
	// and fetch the rest.
	budget := r.cfg.ViewChangeBatchBytes
	pps := make([]*PrePrepare, len(d.prePrepares))
	for i, pp := range d.prePrepares {
		pps[i] = pp
		if size := batchSize(pp.Batch); size > budget {
			c := *pp
			c.Batch = nil
			pps[i] = &c
		} else {
			budget -= size
		}
	}
	nv := &NewView{View: r.view, Replica: r.id, ViewChanges: stripped, PrePrepares: pps}
	r.broadcast(nv)
	r.enterView(nv, d)
}

// stepNewView takes a NEW-VIEW from the new primary: it checks the view-changes in it,
// re-runs the decision on them, requires the primary's pre-prepares to match, and enters
// the view once it holds every batch they name (asking peers for those it lacks).
func (r *Replica) stepNewView(from int, m *NewView) error {
	if m.Replica != r.q.Primary(m.View) {
		return fmt.Errorf("%w: new-view for view %d from non-primary %d", ErrRejected, m.View, m.Replica)
	}
	if m.View < r.view || (m.View == r.view && r.viewActive) {
		return nil
	}
	seen := make(map[int]bool)
	for _, vc := range m.ViewChanges {
		if vc.NewView != m.View || seen[vc.Replica] {
			return fmt.Errorf("%w: new-view holds a foreign or duplicate view-change", ErrRejected)
		}
		seen[vc.Replica] = true
		if err := r.validViewChange(vc, true); err != nil {
			return err
		}
	}
	if len(m.ViewChanges) < r.q.Commit() {
		return fmt.Errorf("%w: new-view with %d view-changes", ErrRejected, len(m.ViewChanges))
	}
	d, ok := decideNewView(r.q, r.cfg.LogWindow, m.View, m.ViewChanges)
	if !ok || !samePrePrepares(d.prePrepares, m.PrePrepares) {
		return fmt.Errorf("%w: new-view pre-prepares do not follow from its view-changes", ErrRejected)
	}
	// The decision fixed each digest; the batches come with the primary's pre-prepares,
	// or, for those it named by digest only, from this replica's log or its peers.
	pps := make([]*PrePrepare, len(m.PrePrepares))
	missing := false
	for i, pp := range m.PrePrepares {
		pps[i] = pp
		if len(pp.Batch) == 0 && pp.Digest != nullDigest {
			if pp.Seq <= r.lowWater {
				continue // enterView skips it: its state is in the stable checkpoint
			}
			if b, ok := r.findBatch(pp.Seq, pp.Digest, nil); ok {
				c := *pp
				c.Batch = b
				pps[i] = &c
			} else {
				missing = true
				r.wantBatch(pp.Seq, pp.Digest, m.ViewChanges, m.Replica)
			}
			continue
		}
		if BatchDigest(pp.Batch) != pp.Digest {
			return fmt.Errorf("%w: new-view batch does not match its digest at %d", ErrRejected, pp.Seq)
		}
		for _, req := range pp.Batch {
			if err := validRequest(req); err != nil {
				return err
			}
		}
	}
	if missing {
		r.vc.pendingNV = m
		return nil
	}
	d.prePrepares = pps
	r.view = m.View
	r.enterView(m, d)
	return nil
}

// samePrePrepares reports whether a and b assign the same digests to the same numbers in
// the same views (batches aside).
func samePrePrepares(a, b []*PrePrepare) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].View != b[i].View || a[i].Seq != b[i].Seq || a[i].Digest != b[i].Digest {
			return false
		}
	}
	return true
}

// enterView starts view nv.View with the decided checkpoint and pre-prepares.
func (r *Replica) enterView(nv *NewView, d decision) {
	vc := r.vc
	vc.wanted, vc.fetched, vc.pendingNV = nil, nil, nil
	r.persist(nv)
	r.viewActive = true
	r.followView = r.view
	r.nextReady.ViewChanged = true
	vc.accepted, vc.mine = nv, nil
	vc.changes++
	clear(r.peerExec) // progress reports of the old view say nothing about this one
	for v := range vc.received {
		if v <= r.view {
			delete(vc.received, v)
		}
	}
	h := d.checkpoint.Seq
	if h > r.lowWater {
		if own, ok := r.checkpoints.own[h]; ok && own == d.checkpoint.State {
			r.makeStable(h)
		} else if h > r.lastExec {
			r.transfer = newTransfer(h, d.checkpoint.State, d.vouchers)
			for _, rep := range d.vouchers {
				r.addCheckpointVote(rep, h, d.checkpoint.State)
			}
			r.retryTransfer()
		}
	}
	// Entries the new view does not re-issue are gone; their requests go back to pending.
	inO := make(map[uint64]bool, len(d.prePrepares))
	var maxO uint64
	for _, pp := range d.prePrepares {
		inO[pp.Seq] = true
		maxO = pp.Seq
	}
	for _, s := range r.sortedSeqs() { // sorted: the requests re-queued here keep one order
		e := r.log[s]
		e.dropVotesBelow(r.view)
		if s > h && !inO[s] && !e.executed {
			if e.pp != nil {
				for _, req := range e.pp.Batch {
					k := keyOf(req)
					if _, done := r.clients.lookup(k); !done && !r.pending.has(k) {
						r.pending.push(req)
					}
				}
			}
			delete(r.log, s)
		}
	}
	r.maxSeq = 0
	for s := range r.log {
		if s > r.maxSeq {
			r.maxSeq = s
		}
	}
	r.inflight = make(map[reqKey]uint64)
	isPrimary := r.IsPrimary()
	for _, pp := range d.prePrepares {
		if pp.Seq <= r.lowWater {
			continue
		}
		if r.acceptPrePrepare(pp) != nil {
			continue // executed here with another digest: agree to nothing about it
		}
		if !isPrimary {
			p := &Prepare{View: pp.View, Seq: pp.Seq, Digest: pp.Digest, Replica: r.id}
			r.broadcast(p)
			r.addPrepare(r.entryAt(pp.Seq), p)
		}
	}
	r.nextSeq = h
	if maxO > r.nextSeq {
		r.nextSeq = maxO
	}
	if r.lowWater > r.nextSeq {
		r.nextSeq = r.lowWater
	}
	// Hand what we were waiting on to the new primary, and time it again.
	vc.timer = 0
	if !isPrimary {
		for i, req := range r.pending.all() {
			if i >= r.cfg.BatchMax*4 {
				break
			}
			r.send(r.Primary(), req)
		}
	}
	vc.noteWork(r)
	r.executeReady()
}
