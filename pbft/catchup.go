package pbft

import "fmt"

// Catch-up: a replica behind executes what its peers executed without waiting for the
// next stable checkpoint (Castro's retransmission through status messages, TOCS 2002 §5.2,
// for numbers the lagging replica cannot complete through the normal case).
//
// The normal-case retransmission of stepStatus resends a replica's own pre-prepare,
// prepare and commit of the current view; a replica behind then needs the primary's
// pre-prepare, which it may never get: its driver refuses a pre-prepare whose requests
// carry no authenticator tag for it (a joiner, for requests a gateway sent before it knew
// the joiner), the primary that pre-prepared may be gone, or it may be changing view. An
// idle cluster makes no next checkpoint, so it would wait for good.
//
// So a peer that has executed further than a replica whose last executed number stayed put
// over a status period (or that consumed what the peer sent it last time) sends it, for
// each number it executed above that one, a Committed message: its own commit for the
// number and the batch. The replica behind executes number s once it holds the batch
// matching the digest and commits from a quorum of the members of its configuration for
// the same (view, s, digest), checked again on every answer (numbers below may execute
// another way meanwhile): a quorum of commits proves the batch committed (f+1
// correct replicas prepared it in that view, so no other batch commits at s in any
// view), whoever pre-prepared it and whatever its authenticators. It never counts fewer,
// takes a batch only if it matches the digest, and keeps one claim per peer and number,
// so a Byzantine peer can neither make it execute another batch nor crowd out the
// correct peers' claims; each peer answers on its own, so a silent or lying one stalls
// nothing while a quorum of correct ones has the commits.
//
// Bounds: a peer answers a given replica at most once per half status period, with at
// most retransmitBatch numbers and catchUpBytes of batches (at least one number), only
// numbers it executed above its own stable checkpoint and above the replica's last
// executed one, and only when the replica executed at least to the peer's stable
// checkpoint (below it, the replica needs the checkpoint and state transfer, which the
// status answer already sends). The replica behind keeps claims only inside its
// watermark window, and answers none: no loops.

// catchUpBytes bounds the batch bytes one answer carries (each number in a message of its
// own, as large as the pre-prepare it copies).
const catchUpBytes = 256 << 10

// catchUpState is both sides of catch-up: per peer, what this replica last heard and
// sent; and the claims peers sent it for numbers it has not executed.
type catchUpState struct {
	seen   []uint64 // last executed number each peer reported in its previous status
	sentTo []uint64 // highest number the last answer to each peer carried; 0: none
	sentAt []uint64 // tick+1 of the last answer to each peer; 0: none
	claims map[uint64]*catchUpClaims
	// executed counts numbers this replica executed by catch-up.
	executed uint64
}

// catchUpClaims are the commits peers sent for one number: one per peer (the highest
// view), and the batches their digests name.
type catchUpClaims struct {
	commit  []Commit // indexed by sender; Replica -1: none
	batches map[Digest][]*Request
}

func newCatchUp(n int) *catchUpState {
	return &catchUpState{seen: make([]uint64, n), sentTo: make([]uint64, n), sentAt: make([]uint64, n),
		claims: make(map[uint64]*catchUpClaims)}
}

// CatchUps counts the numbers this replica executed by catch-up (for tests and metrics).
func (r *Replica) CatchUps() uint64 { return r.catch.executed }

// answerCatchUp runs on a peer's status: if the peer is stuck below what this replica
// executed, it sends the peer the commits and batches it needs.
func (r *Replica) answerCatchUp(from int, m *StatusMsg) {
	c := r.catch
	prev := c.seen[from]
	c.seen[from] = m.LastExecuted
	if m.LastExecuted >= r.lastExec || m.LastExecuted < r.lowWater {
		c.sentTo[from] = 0
		return
	}
	stuck := m.LastExecuted == prev
	streaming := c.sentTo[from] != 0 && m.LastExecuted >= c.sentTo[from]
	if !stuck && !streaming {
		return
	}
	if c.sentAt[from] != 0 && r.ticks+1 < c.sentAt[from]+uint64(max(r.cfg.StatusTicks/2, 1)) {
		return // answered it moments ago: its status crossed our answer
	}
	sent, bytes := 0, 0
	for s := m.LastExecuted + 1; s <= r.lastExec && sent < retransmitBatch; s++ {
		e := r.log[s]
		if e == nil || !e.executed || e.pp == nil {
			break // executed by state transfer, or truncated: nothing to vouch for
		}
		v, ok := r.vouchView(e)
		if !ok {
			break // executed by state transfer or another configuration's votes
		}
		size := batchSize(e.pp.Batch)
		if sent > 0 && bytes+size > catchUpBytes {
			break
		}
		bytes += size
		sent++
		r.send(from, &Committed{View: v, Seq: s, Digest: e.pp.Digest, Batch: e.pp.Batch, Replica: r.id})
		c.sentTo[from] = s
	}
	if sent > 0 {
		c.sentAt[from] = r.ticks + 1
	}
}

// vouchView returns the view this replica names in a catch-up answer for an executed
// entry: the highest view of its own commits for the entry's digest (correct peers that
// went through the same view changes each re-commit what they executed in a new view, so
// they name the same view and their claims add up). Without a commit of its own, it
// executed following a view passively on a quorum of others' commits; it then names the
// highest view in which it holds that quorum, and vouches for what the quorum proves, as
// a replica that caught up does (executeCaughtUp): a correct replica's claim means that
// it either prepared the batch or holds a quorum of commits for it, so a quorum of claims
// still proves the batch committed. Without it, a replica stranded in a view change could
// leave fewer than a quorum able to answer (PBFT_LONG seed 32 of
// TestCatchUpIgnoresALyingPeer, n=7: four peers committed, one lied, one followed).
func (r *Replica) vouchView(e *entry) (view uint64, ok bool) {
	for _, vv := range e.byView {
		if vv.commits.has[r.id] && vv.commits.digest[r.id] == e.pp.Digest && (!ok || vv.view > view) {
			view, ok = vv.view, true
		}
	}
	if ok {
		return view, ok
	}
	for _, vv := range e.byView {
		sized := len(vv.commits.has) == r.q.N // not votes of another configuration's size
		if sized && vv.commits.matching(e.pp.Digest) >= r.q.Commit() && (!ok || vv.view > view) {
			view, ok = vv.view, true
		}
	}
	return view, ok
}

// stepCommitted takes a peer's commit and batch for a number this replica has not
// executed, and executes what a quorum of them proves committed.
func (r *Replica) stepCommitted(from int, m *Committed) error {
	if m.Replica != from {
		return fmt.Errorf("%w: committed names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	if m.Seq <= r.lastExec {
		return nil // old news
	}
	if !r.inWindow(m.Seq) {
		return fmt.Errorf("%w: committed %d outside (%d, %d]", ErrRejected, m.Seq, r.lowWater, r.lowWater+r.cfg.LogWindow)
	}
	if BatchDigest(m.Batch) != m.Digest {
		return fmt.Errorf("%w: committed batch from replica %d does not match its digest", ErrRejected, from)
	}
	for _, req := range m.Batch {
		if err := validRequest(req); err != nil {
			return err
		}
		if req.ReadOnly {
			return fmt.Errorf("%w: read-only request in a committed batch", ErrRejected)
		}
	}
	cl := r.catch.claims[m.Seq]
	if cl == nil {
		cl = &catchUpClaims{commit: make([]Commit, r.q.N), batches: make(map[Digest][]*Request)}
		for i := range cl.commit {
			cl.commit[i].Replica = -1
		}
		r.catch.claims[m.Seq] = cl
	}
	old := cl.commit[from]
	if old.Replica >= 0 && old.View >= m.View {
		// One claim per peer and number: its first in the highest view. A repeated one
		// still re-checks: the claims held may have become executable since they came, by
		// numbers below them executed another way (a new view's pre-prepares), and the
		// peers repeat their answers while this replica stays stuck.
		r.executeCaughtUp()
		return nil
	}
	cl.commit[from] = Commit{View: m.View, Seq: m.Seq, Digest: m.Digest, Replica: from}
	if old.Replica >= 0 && old.Digest != m.Digest && !cl.claimed(old.Digest) {
		delete(cl.batches, old.Digest)
	}
	if _, ok := cl.batches[m.Digest]; !ok {
		cl.batches[m.Digest] = m.Batch
	}
	r.executeCaughtUp()
	return nil
}

func (cl *catchUpClaims) claimed(d Digest) bool {
	for _, c := range cl.commit {
		if c.Replica >= 0 && c.Digest == d {
			return true
		}
	}
	return false
}

// certified returns the view and digest of a quorum of commits for seq, counting the
// claims and the commits logged the normal way, and the batch; ok is false without both.
func (r *Replica) certifiedCommit(seq uint64, cl *catchUpClaims) (uint64, Digest, []*Request, bool) {
	e := r.log[seq]
	for _, c := range cl.commit {
		if c.Replica < 0 {
			continue
		}
		batch, ok := cl.batches[c.Digest]
		if !ok {
			continue
		}
		voters := make([]bool, r.q.N)
		n := 0
		for _, o := range cl.commit {
			if o.Replica >= 0 && o.View == c.View && o.Digest == c.Digest {
				voters[o.Replica] = true
				n++
			}
		}
		if e != nil {
			for _, vv := range e.byView {
				if vv.view != c.View {
					continue
				}
				for i, has := range vv.commits.has {
					if has && i < len(voters) && vv.commits.digest[i] == c.Digest && !voters[i] {
						voters[i] = true
						n++
					}
				}
			}
		}
		if n >= r.q.Commit() {
			return c.View, c.Digest, batch, true
		}
	}
	return 0, Digest{}, nil, false
}

// executeCaughtUp executes, in order from the next number, each one a quorum of commits
// certifies, and drops the claims it no longer needs.
func (r *Replica) executeCaughtUp() {
	for {
		s := r.lastExec + 1
		cl := r.catch.claims[s]
		if cl == nil {
			break
		}
		view, d, batch, ok := r.certifiedCommit(s, cl)
		if !ok {
			break
		}
		e := r.entryAt(s)
		if e.pp != nil && e.pp.Digest != d {
			// Another batch was pre-prepared here and did not commit: its requests wait
			// to be ordered again.
			for _, req := range e.pp.Batch {
				k := keyOf(req)
				delete(r.inflight, k)
				if _, done := r.clients.lookup(k); !done && !r.pending.has(k) {
					r.pending.push(req)
				}
			}
		}
		if e.pp == nil || e.pp.Digest != d {
			// A pre-prepare of the same batch in another view stays: it is a durable
			// record, this made-up one is not.
			e.pp, e.prepared, e.caughtUp = &PrePrepare{View: view, Seq: s, Digest: d, Batch: batch}, false, true
		}
		vv := e.votesFor(view, r.q.N)
		sized := len(vv.commits.has) == r.q.N // not votes of another configuration's size
		for _, c := range cl.commit {
			if sized && c.Replica >= 0 && c.View == view && c.Digest == d {
				vv.commits.add(c.Replica, d)
			}
		}
		e.committed = true
		r.executeReady()
		if r.lastExec < s {
			break
		}
		r.catch.executed++
		// This replica now vouches for s in its own catch-up answers, as if it had
		// committed it: a quorum of such claims still proves the batch committed, since
		// the first quorum of commits for (view, s) could only be completed by replicas
		// that prepared it, or by faulty ones. Without it, two replicas behind on the
		// same numbers could leave fewer than a quorum able to answer the next one.
		if sized {
			vv.commits.add(r.id, d)
			if view == r.view || r.following(view) {
				// And tells its peers, as a replica that committed it the normal way
				// would have: a gateway waiting for every live replica's commit (so
				// that a status after a recovery counts it) would otherwise wait in
				// vain. Even while changing view this is safe, unlike a commit of a
				// batch merely prepared: the commit only adds to a quorum that already
				// exists, so every new view carries this batch anyway.
				r.broadcast(&Commit{View: view, Seq: s, Digest: d, Replica: r.id})
			}
		}
	}
	for s := range r.catch.claims {
		if s <= r.lastExec {
			delete(r.catch.claims, s)
		}
	}
}
