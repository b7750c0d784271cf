package pbft

import (
	"bytes"
	"fmt"
)

func validRequest(m *Request) error {
	if m.Client == "" || m.Gateway == "" {
		return fmt.Errorf("%w: request without client or gateway", ErrRejected)
	}
	return nil
}

// stepRequest handles a client request, sent by a gateway or forwarded by a backup.
func (r *Replica) stepRequest(from int, m *Request) error {
	if err := validRequest(m); err != nil {
		return err
	}
	if m.ReadOnly {
		return r.stepReadOnly(from, m)
	}
	k := keyOf(m)
	if rep, ok := r.clients.lookup(k); ok {
		// A retransmission of an executed request: answer from the cache, run nothing.
		if rep.op != digestOp(m.Op) {
			r.sendConflict(m.Gateway, k, m.Op, rep.seq, rep.view)
			return nil
		}
		r.sendReply(m.Gateway, k, rep)
		return nil
	}
	if r.clients.stale(k) {
		return fmt.Errorf("%w: request %s/%d older than the client's reply cache", ErrRejected, k.client, k.t)
	}
	if seq, ok := r.inflight[k]; ok {
		if e := r.log[seq]; e != nil && e.pp != nil && !sameOp(e.pp.Batch, k, m.Op) {
			r.sendConflict(m.Gateway, k, m.Op, seq, e.pp.View)
		}
		return nil // already ordered; its reply will come
	}
	if q, ok := r.pending.byKey[k]; ok {
		if !bytes.Equal(q.Op, m.Op) {
			// The first one the replica saw stays queued; this one is answered as a
			// conflict once that one is ordered and the client retransmits.
			return fmt.Errorf("%w: request %s/%d queued with another operation", ErrRejected, k.client, k.t)
		}
	} else {
		r.pending.push(m)
		if r.IsPrimary() {
			r.ret.arrived(k.client, k.t, r.ticks)
		}
	}
	if !r.IsPrimary() && from == FromClient && r.viewActive {
		// A backup passes a client's request on to the primary and starts timing it.
		r.send(r.Primary(), m)
	}
	r.vc.noteWork(r)
	return nil
}

// Backlog reports the requests a primary has queued and not ordered yet, and how many
// batches it ordered that have not executed here; a driver uses them to time batches.
func (r *Replica) Backlog() (pending int, inflight uint64) {
	if r.nextSeq > r.lastExec {
		inflight = r.nextSeq - r.lastExec
	}
	return r.pending.len(), inflight
}

// Propose makes the primary order the requests it has queued, in batches of at most
// BatchMax, as far as the high watermark allows. The driver calls it after a burst of
// Steps, so that requests arriving together share a pre-prepare.
func (r *Replica) Propose() {
	if !r.IsPrimary() || !r.viewActive || r.restartPassive(r.view) {
		return
	}
	for r.pending.len() > 0 && r.inWindow(r.nextSeq+1) && r.barrier == 0 {
		batch := r.pending.pop(r.cfg.BatchMax, r.cfg.BatchBytes)
		if len(batch) == 0 {
			break
		}
		r.nextSeq++
		pp := &PrePrepare{View: r.view, Seq: r.nextSeq, Digest: BatchDigest(batch), Batch: batch}
		_ = r.acceptPrePrepare(pp) // a fresh number above lastExec: nothing executed to refuse
		r.broadcast(pp)
	}
}

// stepPrePrepare applies the acceptance rules of §4.2: right view and sender, inside the
// watermarks, a digest that matches the batch, and no other digest accepted for (v, n).
func (r *Replica) stepPrePrepare(from int, m *PrePrepare) error {
	if r.following(m.View) {
		return r.followPrePrepare(from, m)
	}
	switch {
	case !r.viewActive || m.View != r.view:
		return fmt.Errorf("%w: pre-prepare for view %d in view %d", ErrRejected, m.View, r.view)
	case from != r.q.Primary(m.View):
		return fmt.Errorf("%w: pre-prepare from non-primary %d", ErrRejected, from)
	case !r.inWindow(m.Seq):
		return fmt.Errorf("%w: pre-prepare %d outside (%d, %d]", ErrRejected, m.Seq, r.lowWater, r.lowWater+r.cfg.LogWindow)
	}
	if e := r.log[m.Seq]; e != nil && e.pp != nil && e.pp.View == m.View {
		if e.pp.Digest != m.Digest {
			return fmt.Errorf("%w: second digest for view %d seq %d", ErrRejected, m.View, m.Seq)
		}
		return nil // duplicate
	}
	for _, req := range m.Batch {
		if err := validRequest(req); err != nil {
			return err
		}
		if req.ReadOnly {
			return fmt.Errorf("%w: read-only request in a pre-prepare", ErrRejected)
		}
	}
	if BatchDigest(m.Batch) != m.Digest {
		return fmt.Errorf("%w: pre-prepare digest does not match its batch", ErrRejected)
	}
	if err := r.checkReconfigBatch(m); err != nil {
		return err
	}
	if err := r.acceptPrePrepare(m); err != nil {
		return err
	}
	p := &Prepare{View: m.View, Seq: m.Seq, Digest: m.Digest, Replica: r.id}
	r.broadcast(p)
	r.addPrepare(r.entryAt(m.Seq), p)
	return nil
}

// acceptPrePrepare logs pp as the entry's pre-prepare (at the primary too). It refuses a
// pre-prepare for a number this replica executed with another digest, on every path (a
// backup's, a new view's): what executed is never overwritten, whatever a primary or a
// NEW-VIEW decided from more than f faulty view-changes says.
func (r *Replica) acceptPrePrepare(pp *PrePrepare) error {
	if e := r.log[pp.Seq]; e != nil && e.executed && e.pp != nil && e.pp.Digest != pp.Digest {
		r.refusedReissues++
		return fmt.Errorf("%w: seq %d executed with another digest", ErrRejected, pp.Seq)
	}
	e := r.entryAt(pp.Seq)
	if e.pp == nil || e.pp.View != pp.View {
		e.prepared = false
	}
	e.pp, e.caughtUp = pp, false
	r.persist(pp)
	r.noteReconfigAccepted(pp)
	e.votesFor(pp.View, r.q.N) // the certificate may need no votes at all (n = 1)
	e.notePrePrepared(pp.View, pp.Digest)
	for _, req := range pp.Batch {
		k := keyOf(req)
		r.pending.remove(k)
		if _, done := r.clients.lookup(k); !done && !e.executed {
			r.inflight[k] = pp.Seq
		}
	}
	r.vc.noteWork(r)
	if e.executed && !e.prepared {
		// A new view re-issues a number this replica executed: it holds proof that this
		// digest committed (a new view must re-issue exactly it), so it commits again at
		// once instead of waiting for a prepared certificate that late votes may never
		// complete.
		e.prepared = true
		vv := e.current()
		c := &Commit{View: pp.View, Seq: e.seq, Digest: pp.Digest, Replica: r.id}
		r.persist(c)
		r.broadcast(c)
		vv.commits.add(r.id, c.Digest)
		return nil
	}
	r.checkPrepared(e)
	return nil
}

// RefusedReissues counts pre-prepares refused because this replica executed their number
// with another digest: never under at most f faults, so the driver reports it loudly.
func (r *Replica) RefusedReissues() uint64 { return r.refusedReissues }

func (r *Replica) voteCheck(view, seq uint64, replica, from int) error {
	switch {
	case replica != from:
		return fmt.Errorf("%w: vote names replica %d, sent by %d", ErrRejected, replica, from)
	case view != r.view && !r.following(view):
		// Votes for the view being changed to are kept: they may beat its NEW-VIEW here.
		return fmt.Errorf("%w: vote for view %d in view %d", ErrRejected, view, r.view)
	case !r.inWindow(seq):
		return fmt.Errorf("%w: vote for %d outside (%d, %d]", ErrRejected, seq, r.lowWater, r.lowWater+r.cfg.LogWindow)
	}
	return nil
}

func (r *Replica) stepPrepare(from int, m *Prepare) error {
	if m.Seq <= r.lowWater && m.Seq > 0 && m.Replica == from {
		r.history.late(m.Seq, from, m.Digest, false)
		return nil
	}
	if err := r.voteCheck(m.View, m.Seq, m.Replica, from); err != nil {
		return err
	}
	if from == r.q.Primary(m.View) {
		return fmt.Errorf("%w: prepare from the primary", ErrRejected)
	}
	r.addPrepare(r.entryAt(m.Seq), m)
	return nil
}

func (r *Replica) addPrepare(e *entry, m *Prepare) {
	if e.votesFor(m.View, r.q.N).prepares.add(m.Replica, m.Digest) {
		r.checkPrepared(e)
	}
}

func (r *Replica) stepCommit(from int, m *Commit) error {
	if m.Seq <= r.lowWater && m.Seq > 0 && m.Replica == from {
		r.history.late(m.Seq, from, m.Digest, true)
		return nil
	}
	if err := r.voteCheck(m.View, m.Seq, m.Replica, from); err != nil {
		return err
	}
	e := r.entryAt(m.Seq)
	if e.votesFor(m.View, r.q.N).commits.add(m.Replica, m.Digest) {
		if r.following(m.View) {
			r.checkFollowCommitted(e)
		} else {
			r.checkCommitted(e)
		}
	}
	return nil
}

// following reports whether messages of view are taken in passive follow mode: the view
// being changed from, or the view a replica restarted in (restartPassive).
func (r *Replica) following(view uint64) bool {
	return !r.viewActive && view == r.followView && view < r.view || r.restartPassive(view)
}

// followPrePrepare logs a pre-prepare of the followed view without agreeing to it: a
// replica that asked for a new view sends nothing more for the old one.
func (r *Replica) followPrePrepare(from int, m *PrePrepare) error {
	if from != r.q.Primary(m.View) || !r.inWindow(m.Seq) || BatchDigest(m.Batch) != m.Digest {
		return fmt.Errorf("%w: followed pre-prepare", ErrRejected)
	}
	e := r.entryAt(m.Seq)
	if e.executed || (e.pp != nil && e.pp.View >= m.View) {
		return nil
	}
	e.pp, e.prepared = m, false
	e.votesFor(m.View, r.q.N)
	r.checkFollowCommitted(e)
	return nil
}

// checkFollowCommitted executes a followed entry once 2f+1 other replicas committed its
// digest: that certificate proves it committed, whatever this replica did not send.
func (r *Replica) checkFollowCommitted(e *entry) {
	vv := e.current()
	if e.committed || vv == nil || vv.commits.matching(e.pp.Digest) < r.q.Commit() {
		return
	}
	e.committed = true
	r.executeReady()
}

// checkPrepared sends the commit once the entry holds a prepared certificate: its
// pre-prepare and 2f matching prepares from distinct backups.
func (r *Replica) checkPrepared(e *entry) {
	vv := e.current()
	if e.prepared || e.caughtUp || vv == nil || vv.prepares.matching(e.pp.Digest) < r.q.Prepare() {
		// A caught-up entry has no pre-prepare this replica accepted (nor recorded): it
		// prepares nothing on it, and needs no commit of its own to execute.
		return
	}
	if r.following(e.pp.View) {
		// A replica that sent VIEW-CHANGE sends nothing more for the old view: a commit now
		// could help commit a batch its VIEW-CHANGE did not report as prepared.
		return
	}
	e.prepared = true
	if e.pset == nil || e.pset.View < e.pp.View {
		e.pset = &Prepared{Seq: e.seq, View: e.pp.View, Digest: e.pp.Digest, Batch: e.pp.Batch}
	}
	c := &Commit{View: e.pp.View, Seq: e.seq, Digest: e.pp.Digest, Replica: r.id}
	r.persist(c)
	r.broadcast(c)
	vv.commits.add(r.id, c.Digest)
	r.checkCommitted(e)
}

// checkCommitted marks the entry committed-local (prepared plus 2f+1 matching commits)
// and executes what is now executable.
func (r *Replica) checkCommitted(e *entry) {
	vv := e.current()
	if e.committed || !e.prepared || vv == nil || vv.commits.matching(e.pp.Digest) < r.q.Commit() {
		return
	}
	e.committed = true
	r.executeReady()
}

// executeReady executes committed batches strictly in sequence order.
func (r *Replica) executeReady() {
	for {
		e := r.log[r.lastExec+1]
		if e == nil || !e.committed || e.executed {
			return
		}
		r.executeBatch(e)
	}
}

func (r *Replica) executeBatch(e *entry) {
	// The batch's replies leave together, so they share one allocation.
	replies := make([]Reply, 0, len(e.pp.Batch))
	// Only the clients of a batch of several are counted as coming back: one request at a
	// time (a serial stream, whatever its client names) must not wait for its own past.
	countBack := r.IsPrimary() && len(e.pp.Batch) > 1
	for _, req := range e.pp.Batch {
		k := keyOf(req)
		delete(r.inflight, k)
		r.pending.remove(k)
		rec := r.clients.records[k.client] // looked up once for the lookup, the check and the record
		rep, done := rec.find(k.t)
		if done && rep.op != digestOp(req.Op) {
			// A faulty primary ordered a second operation under one request id: it does
			// not execute, on any replica (the cache is replicated state).
			r.sendConflict(req.Gateway, k, req.Op, rep.seq, rep.view)
			continue
		}
		if !done {
			if rec.evictedUpTo(k.t) {
				continue // stale: identically refused on every replica (the cache is replicated state)
			}
			var result []byte
			if IsReconfig(req.Op) {
				result = r.executeReconfig(req, len(e.pp.Batch), e.seq) // never the application's
			} else {
				result = r.app.Execute(req.Op)
			}
			rep = cachedReply{seq: e.seq, view: e.pp.View, result: result, op: digestOp(req.Op)}
			r.clients.recordIn(rec, k, rep)
		}
		replies = append(replies, r.reply(k, rep))
		r.out = append(r.out, Outbound{To: ToGateway, Gateway: req.Gateway, Msg: &replies[len(replies)-1]})
		if countBack {
			r.ret.executed(k.client, k.t, r.ticks)
		}
	}
	e.executed = true
	r.lastExec = e.seq
	if r.barrier == e.seq && r.conf.next == nil {
		r.barrier = 0 // a refused reconfiguration: ordering goes on in this configuration
	}
	r.executed = append(r.executed, Executed{e.seq, e.pp.Digest})
	r.vc.noteProgress(r)
	if e.seq%r.cfg.CheckpointInterval == 0 || (r.conf.next != nil && r.conf.nextSeq == e.seq) {
		// Every member checkpoints the reconfiguration's number, whatever K: a quorum of
		// those certifies the state the next configuration starts from.
		r.takeCheckpoint(e.seq)
	}
}

func (r *Replica) sendReply(gateway string, k reqKey, rep cachedReply) {
	m := r.reply(k, rep)
	r.out = append(r.out, Outbound{To: ToGateway, Gateway: gateway, Msg: &m})
}

// reply is the reply to k that rep caches.
func (r *Replica) reply(k reqKey, rep cachedReply) Reply {
	return Reply{View: rep.view, Seq: rep.seq, Client: k.client, Timestamp: k.t, Replica: r.id, Result: rep.result,
		Conf: r.conf.cur.Conf}
}

// sendConflict answers a request with operation op whose id was ordered at seq with
// another operation.
func (r *Replica) sendConflict(gateway string, k reqKey, op []byte, seq, view uint64) {
	r.sendReply(gateway, k, cachedReply{seq: seq, view: view, result: ConflictResultFor(op)})
}

// sameOp reports whether batch orders the request k with operation op (or not at all).
func sameOp(batch []*Request, k reqKey, op []byte) bool {
	for _, req := range batch {
		if keyOf(req) == k {
			return bytes.Equal(req.Op, op)
		}
	}
	return true
}

// Conflicting reports whether this replica executed or ordered the request (client,
// timestamp) with an operation other than op.
func (r *Replica) Conflicting(client string, timestamp uint64, op []byte) bool {
	k := reqKey{client, timestamp}
	if rep, ok := r.clients.lookup(k); ok {
		return rep.op != digestOp(op)
	}
	if s, ok := r.inflight[k]; ok {
		if e := r.log[s]; e != nil && e.pp != nil {
			return !sameOp(e.pp.Batch, k, op)
		}
	}
	return false
}

// Stale reports a request this replica will refuse: not in the client's reply cache, but
// no newer than a reply the cache already dropped, so it may have executed before.
func (r *Replica) Stale(client string, timestamp uint64) bool {
	return r.clients.stale(reqKey{client, timestamp})
}

// Lookup tells where a request stands at this replica: the sequence number and view it
// was ordered in (ordered), and whether it has executed.
func (r *Replica) Lookup(client string, timestamp uint64) (seq, view uint64, ordered, executed bool) {
	k := reqKey{client, timestamp}
	if rep, ok := r.clients.lookup(k); ok {
		return rep.seq, rep.view, true, true
	}
	if s, ok := r.inflight[k]; ok {
		if e := r.log[s]; e != nil && e.pp != nil {
			return s, e.pp.View, true, false
		}
	}
	return 0, 0, false, false
}
