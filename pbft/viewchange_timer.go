package pbft

// waiting reports whether a backup is waiting for requests to execute.
func (r *Replica) waiting() bool { return r.pending.len() > 0 || len(r.inflight) > 0 }

// noteWork starts a backup's timer when it learns of work and the timer is idle.
func (vc *viewChangeState) noteWork(r *Replica) {
	if r.viewActive && !r.IsPrimary() && vc.timer == 0 && r.waiting() {
		vc.timer = vc.timeout
	}
}

// noteProgress restarts the timer after an execution, or stops it when nothing waits;
// progress in a view also resets the timeout to its base.
func (vc *viewChangeState) noteProgress(r *Replica) {
	if !r.viewActive {
		return
	}
	vc.timeout = vc.base
	vc.timer = 0
	vc.noteWork(r)
}

// tickViewChange advances the view-change timer by one tick; when it runs out, the
// replica suspects the primary (or the view it is changing to) and moves to the next view.
// Each status interval it also resends what a stalled view change needs.
func (r *Replica) tickViewChange() {
	vc := r.vc
	if nv := vc.pendingNV; nv != nil && r.statusTimer == 0 {
		vc.pendingNV = nil
		_ = r.stepNewView(nv.Replica, nv) // asks again for batches still missing
	}
	if !r.viewActive && r.statusTimer == 0 && vc.mine != nil {
		r.broadcast(vc.mine) // a lost VIEW-CHANGE must not stall the change
		if len(vc.wanted) > 0 && r.q.Primary(r.view) == r.id {
			r.tryNewView() // asks again for batches still missing
		}
	}
	if vc.timer == 0 {
		return
	}
	vc.timer--
	if vc.timer > 0 {
		return
	}
	if r.viewActive {
		if r.othersAhead() {
			// f+1 peers in this view executed past us, so at least one correct replica
			// sees the primary work: we are behind, not the primary faulty. Catch up
			// (status retransmission, state transfer) and time again.
			vc.timer = vc.timeout
			return
		}
		r.startViewChange(r.view + 1)
		return
	}
	// The view being changed to did not start in time: try the next, waiting longer.
	vc.timeout *= 2
	r.startViewChange(r.view + 1)
}

// othersAhead reports whether f+1 peers' latest status, in the current view, shows them
// past this replica's last executed number.
func (r *Replica) othersAhead() bool {
	n := 0
	for i, e := range r.peerExec {
		if i != r.id && e > r.lastExec {
			n++
		}
	}
	return n >= r.q.Weak()
}
