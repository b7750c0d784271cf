package pbft

import (
	"crypto/sha256"
	"fmt"
)

// What a replica keeps on disk, and why (Castro & Liskov TOCS §4 assume it survives a
// restart; a replica that forgets it is indistinguishable from a faulty one):
//
//   - every pre-prepare it accepted (or, as primary, sent): after a restart it must not
//     agree to another batch for the same view and number, and its view-changes must
//     report what it pre-prepared (the Q set);
//   - every commit it sent: a commit is sent only when prepared, so it marks the P set,
//     which the next view must respect for requests a client may have seen answered;
//   - its own VIEW-CHANGE, and the NEW-VIEW that started its current view: it never goes
//     back to a lower view, and it can show a laggard the current view;
//   - the state at its stable checkpoint (application and reply cache), so that a restart
//     does not replay the history from the start;
//   - the state at its latest own checkpoint above that, with its CHECKPOINT: peers may
//     have counted that vote toward a stable checkpoint and dropped the messages below it,
//     so a replica that forgot the execution behind its vote could be left with nobody
//     to re-learn it from.
//
// These are all protocol messages (a checkpoint state travels as a State record), so a
// record is a Message and the driver stores it with the wire codec. Ready.Persist lists
// the records to append before anything in Ready.Messages is sent. When a checkpoint
// becomes stable, Ready.Compact instead lists the whole durable state from scratch: the
// driver replaces its log with it, which is how the log stays bounded. Execution is not
// recorded: a restarted replica executes again from its checkpoint what commits prove
// committed, with the same results, since execution is deterministic.
//
// One exception to "before anything is sent", which a driver may use: a Reply reports
// only the execution of its number and those below, so it may go once this replica's
// Commit records for those numbers (and a Compact handed out before it) are durable,
// whatever later Readies added meanwhile. A number executed without an own Commit
// record (2f+1 others' commits proved it, or a state fetched from peers) rests on
// records those peers made durable before they sent their commits or checkpoints.
// pbft/node does this, so that under load a batch's replies do not wait for the
// records of the rounds begun after it.
//
// A second exception (issue 19: it takes two of a round's three fsyncs off its critical
// path): a vote, a PrePrepare or Prepare message, may go before the PrePrepare and Commit
// records handed out with or before it are durable, though not before any other record
// (a NEW-VIEW, VIEW-CHANGE, checkpoint, state or compaction: what puts the replica in the
// view and configuration it votes in). Everything else still waits for every record
// before it, and the log is appended in order. So a crash may lose the pre-prepares this
// replica accepted or sent last, after it voted for them. Why that is safe:
//
//   - Such a replica restores a view it was active in; Restore marks it (restartedIn),
//     and it votes in none of that view (restartPassive): as primary it orders nothing,
//     as backup it takes pre-prepares passively (following) and sends no prepare or
//     commit; it executes what 2f+1 others' commits prove committed. So it never votes
//     for a second digest at a (view, number) it may have voted for and forgotten: it
//     never equivocates, which is all a correct replica owes the other votes.
//   - Votes in a later view wait for the NEW-VIEW record that entered it; one restored
//     in the middle of a view change sent nothing for the view it changes from after
//     its VIEW-CHANGE record, which is durable with every pre-prepare before it.
//   - A forgotten pre-prepare was never committed by this replica: its Commit record
//     comes after it in the log and the commit waits for it. So the P set it reports is
//     whole; what it forgets was only prepared or pre-prepared here, a batch whose fate
//     the next view is free to decide. Its VIEW-CHANGE is sent only once every record
//     before it is durable, so its Q set reports nothing it could forget later; a
//     forgotten Q-set entry is one vote fewer for a batch in the new-view decision,
//     which f+1 replicas that committed it still make durably.
//
// The cost is liveness after a crash: a restarted primary orders nothing until a view
// change, and a restarted backup is not counted in its view's certificates. After a kill
// of every replica the cluster resumes after one view-change timeout.

// viewAt names a view of a configuration (views start at 0 in each configuration).
type viewAt struct{ conf, view uint64 }

// restartPassive reports whether this replica must not vote in view: it restarted from
// its log while active in it, and may have lost records of votes it sent (above).
func (r *Replica) restartPassive(view uint64) bool {
	p := r.restartedIn
	return p != nil && r.viewActive && view == r.view && p.view == view && p.conf == r.conf.cur.Conf
}

// persist records m for the driver to make durable before the next send.
func (r *Replica) persist(m Message) {
	if r.cfg.Durable && !r.compactPending {
		r.persistQ = append(r.persistQ, m)
	}
}

// requestCompaction makes the next Ready carry the whole durable state.
func (r *Replica) requestCompaction() {
	if r.cfg.Durable {
		r.compactPending, r.persistQ = true, nil
	}
}

// durableState lists records that rebuild what this replica must remember, in an order
// Restore applies correctly: the stable state, the view, then each live sequence number's
// older prepared batch before its current pre-prepare.
func (r *Replica) durableState() []Message {
	var out []Message
	if r.join != nil && r.admission != nil {
		out = append(out, r.admission)
	}
	id := max(r.id, 0) // a replica that left keeps its state under some index
	if snap, ok := r.checkpoints.snapshots[r.lowWater]; ok && r.lowWater > 0 {
		out = append(out, &State{Seq: r.lowWater, Total: uint64(len(snap)), Snapshot: snap, Replica: id})
	}
	if top := r.topCheckpoint(); top > r.lowWater {
		out = append(out,
			&Checkpoint{Seq: top, State: r.checkpoints.own[top], Replica: id},
			&State{Seq: top, Total: uint64(len(r.checkpoints.snapshots[top])), Snapshot: r.checkpoints.snapshots[top], Replica: id})
	}
	if r.vc.accepted != nil {
		out = append(out, r.vc.accepted)
	}
	if !r.viewActive && r.vc.mine != nil {
		out = append(out, r.vc.mine)
	}
	for _, s := range r.sortedSeqs() {
		e := r.log[s]
		if s <= r.lowWater {
			continue
		}
		for _, q := range e.qset {
			if e.pp == nil || q.View != e.pp.View || q.Digest != e.pp.Digest {
				// Only what the Q set needs: view and digest, no batch.
				out = append(out, &PrePrepare{View: q.View, Seq: s, Digest: q.Digest})
			}
		}
		if p := e.pset; p != nil && (e.pp == nil || p.View != e.pp.View) {
			out = append(out,
				&PrePrepare{View: p.View, Seq: s, Digest: p.Digest, Batch: p.Batch},
				&Commit{View: p.View, Seq: s, Digest: p.Digest, Replica: r.id})
		}
		if e.pp != nil && !e.caughtUp && (!r.following(e.pp.View) || e.pset != nil && e.pset.View == e.pp.View) {
			out = append(out, e.pp)
			if vv := e.current(); vv != nil && vv.commits.has[r.id] {
				out = append(out, &Commit{View: e.pp.View, Seq: s, Digest: vv.commits.digest[r.id], Replica: r.id})
			}
		}
	}
	return append(out, r.chainRecords()...) // last: it may move the restored replica on
}

// Restore rebuilds a new replica from the records its driver kept (what Ready.Compact and
// Ready.Persist handed out, in order). It must be called before anything else. It checks
// what it can (a snapshot decodes, a batch matches its digest) and fails on records that
// do not fit together: the driver must then not run the replica on damaged state.
func (r *Replica) Restore(records []Message) error {
	if r.ticks != 0 || len(r.log) != 0 || r.lastExec != 0 || r.view != 0 {
		return fmt.Errorf("pbft: Restore on a replica that already ran")
	}
	for i, m := range records {
		if err := r.restoreOne(m); err != nil {
			return fmt.Errorf("pbft: durable record %d (%s): %w", i, m.Kind(), err)
		}
	}
	if r.restoringCheckpoint != 0 {
		return fmt.Errorf("pbft: durable log ends between a checkpoint and its state")
	}
	// What was executed above the last checkpoint runs again once commits prove it
	// committed.
	r.inflight = make(map[reqKey]uint64)
	r.maxSeq = 0
	for s, e := range r.log {
		if s > r.maxSeq {
			r.maxSeq = s
		}
		if s <= r.lastExec {
			e.executed, e.committed = true, true
		}
		if e.pp == nil || e.executed {
			continue
		}
		if e.pp.View == r.view && e.pp.Seq > r.nextSeq {
			r.nextSeq = e.pp.Seq
		}
		if e.pp.View == r.view {
			r.noteReconfigAccepted(e.pp)
		}
		for _, req := range e.pp.Batch {
			if _, done := r.clients.lookup(keyOf(req)); !done {
				r.inflight[keyOf(req)] = s
			}
		}
	}
	if r.nextSeq < r.lowWater {
		r.nextSeq = r.lowWater
	}
	if r.viewActive {
		r.followView = r.view
		r.restartedIn = &viewAt{conf: r.conf.cur.Conf, view: r.view}
	} else {
		// Follow the last view this replica was active in, as before the restart.
		if r.vc.accepted != nil {
			r.followView = r.vc.accepted.View
		}
		for _, e := range r.log {
			if e.pp != nil && e.pp.View < r.view && e.pp.View > r.followView {
				r.followView = e.pp.View
			}
		}
	}
	r.nextReady.ViewChanged = r.view != 0
	r.out = nil // restoring sends nothing; status exchange resends what peers lack
	r.vc.noteWork(r)
	r.adoptRestoredChain()
	return nil
}

func (r *Replica) restoreOne(m Message) error {
	switch m := m.(type) {
	case *Checkpoint:
		if m.Replica != max(r.id, 0) || m.Seq <= r.lastExec {
			return fmt.Errorf("checkpoint %d of replica %d", m.Seq, m.Replica)
		}
		r.restoringCheckpoint = m.Seq
		return nil
	case *State:
		if m.Offset != 0 || m.Total != uint64(len(m.Snapshot)) {
			return fmt.Errorf("state %d is a piece [%d, +%d) of %d bytes, not a whole snapshot", m.Seq, m.Offset, len(m.Snapshot), m.Total)
		}
		d := sha256.Sum256(m.Snapshot)
		if own := r.restoringCheckpoint; own != 0 {
			// The state this replica checkpointed above its stable one.
			r.restoringCheckpoint = 0
			if m.Seq != own {
				return fmt.Errorf("state %d after checkpoint %d", m.Seq, own)
			}
			if err := r.installSnapshot(m.Snapshot); err != nil {
				return err
			}
			r.lastExec = m.Seq
			r.checkpoints.own[m.Seq] = d
			r.checkpoints.snapshots[m.Seq] = m.Snapshot
			r.checkpoints.votes[m.Seq] = map[int]Digest{r.id: d}
			return nil
		}
		if len(r.log) != 0 || r.lowWater != 0 || r.lastExec != 0 {
			return fmt.Errorf("stable state after other records")
		}
		if err := r.installSnapshot(m.Snapshot); err != nil {
			return err
		}
		r.lowWater, r.lastExec, r.nextSeq = m.Seq, m.Seq, m.Seq
		r.checkpoints.own = map[uint64]Digest{m.Seq: d}
		r.checkpoints.snapshots = map[uint64][]byte{m.Seq: m.Snapshot}
		if r.conf.next != nil && r.conf.nextSeq <= m.Seq {
			r.enterNext() // the stable state ended a configuration: run the next
		}
		return nil
	case *NewView:
		if m.View >= r.view {
			r.view, r.viewActive, r.vc.mine = m.View, true, nil
			r.vc.accepted = m
			r.vc.changes++
		}
		return nil
	case *ViewChange:
		if m.Replica != r.id {
			return fmt.Errorf("view-change of replica %d", m.Replica)
		}
		if m.NewView > r.view || (m.NewView == r.view && !r.viewActive) {
			r.view, r.viewActive = m.NewView, false
			r.vc.mine = m
			r.recordViewChange(m)
		}
		return nil
	case *PrePrepare:
		if m.Seq <= r.lowWater {
			return nil
		}
		if m.View > r.view {
			r.view, r.viewActive = m.View, true
		}
		e := r.entryAt(m.Seq)
		e.notePrePrepared(m.View, m.Digest)
		if BatchDigest(m.Batch) != m.Digest {
			if len(m.Batch) != 0 {
				return fmt.Errorf("batch does not match its digest at %d", m.Seq)
			}
			return nil // a Q-set note only
		}
		if e.pp == nil || m.View >= e.pp.View {
			if e.pp == nil || e.pp.View != m.View {
				e.prepared = false
			}
			e.pp = m
			vv := e.votesFor(m.View, r.q.N)
			if r.q.Primary(m.View) != r.id {
				vv.prepares.add(r.id, m.Digest) // a backup prepared every batch it accepted
			}
		}
		return nil
	case *Commit:
		if m.Replica != r.id {
			return fmt.Errorf("commit of replica %d", m.Replica)
		}
		if m.Seq <= r.lowWater {
			return nil
		}
		if m.View > r.view {
			r.view, r.viewActive = m.View, true
		}
		e := r.entryAt(m.Seq)
		if e.pp == nil || e.pp.View != m.View || e.pp.Digest != m.Digest {
			return fmt.Errorf("commit at %d without its pre-prepare", m.Seq)
		}
		e.prepared = true
		if e.pset == nil || e.pset.View < m.View {
			e.pset = &Prepared{Seq: m.Seq, View: m.View, Digest: m.Digest, Batch: e.pp.Batch}
		}
		e.votesFor(m.View, r.q.N).commits.add(r.id, m.Digest)
		return nil
	case *Request:
		return r.restoreAdmission(m)
	case *Chain:
		return r.restoreChain(m)
	}
	return fmt.Errorf("not a durable record")
}

// topCheckpoint is the highest number this replica took a checkpoint at.
func (r *Replica) topCheckpoint() uint64 {
	var top uint64
	for s := range r.checkpoints.own {
		if s > top {
			top = s
		}
	}
	return top
}
