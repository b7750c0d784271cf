package pbft

import (
	"crypto/sha256"
	"fmt"
	"sort"
)

// checkpointState tracks checkpoints above the stable one: this replica's own state
// digests (and snapshots, to serve state transfer) and the digests peers announced.
type checkpointState struct {
	own       map[uint64]Digest
	snapshots map[uint64][]byte
	votes     map[uint64]map[int]Digest
}

func newCheckpointState() *checkpointState {
	return &checkpointState{
		own:       make(map[uint64]Digest),
		snapshots: make(map[uint64][]byte),
		votes:     make(map[uint64]map[int]Digest),
	}
}

// certified returns the digest that at least quorum replicas announced for seq.
func (c *checkpointState) certified(seq uint64, quorum int) (Digest, []int, bool) {
	counts := make(map[Digest][]int)
	for rep, d := range c.votes[seq] {
		counts[d] = append(counts[d], rep)
	}
	for d, reps := range counts {
		if len(reps) >= quorum {
			sort.Ints(reps)
			return d, reps, true
		}
	}
	return Digest{}, nil, false
}

// takeCheckpoint records the state after executing seq and announces its digest.
func (r *Replica) takeCheckpoint(seq uint64) {
	var snap []byte
	d := r.stateDigest(&snap)
	r.checkpoints.own[seq] = d
	r.checkpoints.snapshots[seq] = snap
	cp := &Checkpoint{Seq: seq, State: d, Replica: r.id}
	r.persist(cp)
	r.persist(&State{Seq: seq, Snapshot: snap, Replica: r.id})
	r.broadcast(cp)
	r.addCheckpointVote(r.id, seq, d)
}

func (r *Replica) stepCheckpoint(from int, m *Checkpoint) error {
	if m.Replica != from {
		return fmt.Errorf("%w: checkpoint names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	if m.Seq <= r.lowWater || m.Seq%r.cfg.CheckpointInterval != 0 {
		return nil // old news, or not a checkpoint boundary
	}
	// Far-future checkpoints are kept only at the boundary a replica could be behind by;
	// bound what one peer can make us store: one vote per replica per seq, and only seqs
	// within a few windows.
	if m.Seq > r.lowWater+4*r.cfg.LogWindow && m.Seq > r.lastExec+4*r.cfg.LogWindow {
		r.pruneFarCheckpoints(from, m.Seq)
	}
	r.addCheckpointVote(from, m.Seq, m.State)
	return nil
}

// pruneFarCheckpoints keeps at most one far-ahead checkpoint vote per peer (its latest).
func (r *Replica) pruneFarCheckpoints(from int, seq uint64) {
	for s, vs := range r.checkpoints.votes {
		if s > r.lowWater+4*r.cfg.LogWindow && s < seq {
			delete(vs, from)
			if len(vs) == 0 {
				delete(r.checkpoints.votes, s)
			}
		}
	}
}

func (r *Replica) addCheckpointVote(from int, seq uint64, d Digest) {
	vs := r.checkpoints.votes[seq]
	if vs == nil {
		vs = make(map[int]Digest)
		r.checkpoints.votes[seq] = vs
	}
	if _, ok := vs[from]; ok {
		return
	}
	vs[from] = d
	cert, _, ok := r.checkpoints.certified(seq, r.q.Commit())
	if !ok {
		r.checkClaimedStable(seq)
		return
	}
	if own, have := r.checkpoints.own[seq]; have && own == cert {
		r.makeStable(seq)
		return
	}
	if seq > r.lastExec {
		// The cluster has a stable checkpoint this replica has not reached: fetch it.
		r.startTransfer(seq, cert)
	}
}

// checkClaimedStable starts a state transfer to seq when f+1 peers report it (or a later
// number) as their stable checkpoint and announced the same digest for it: one of them is
// correct, so the digest is the state's, and the messages below seq may be gone from the
// log of every replica that has them stable. Without this, replicas that lost the
// execution above their own checkpoint in a restart would wait forever for the third
// vote of a 2f+1 certificate that only a replica like them could give.
func (r *Replica) checkClaimedStable(seq uint64) {
	if seq <= r.lastExec || (r.transfer != nil && r.transfer.seq >= seq) {
		return
	}
	counts := make(map[Digest][]int)
	for rep, d := range r.checkpoints.votes[seq] {
		if rep != r.id && r.peerLow[rep] >= seq {
			counts[d] = append(counts[d], rep)
		}
	}
	for d, reps := range counts {
		if len(reps) >= r.q.Weak() {
			sort.Ints(reps)
			r.transfer = &stateTransfer{seq: seq, digest: d, from: reps}
			r.retryTransfer()
			return
		}
	}
}

// makeStable moves the low watermark to seq and discards everything below it.
func (r *Replica) makeStable(seq uint64) {
	if seq <= r.lowWater {
		return
	}
	r.lowWater = seq
	r.requestCompaction()
	for s, e := range r.log {
		if s <= seq {
			r.history.keep(e, r.q.N)
			delete(r.log, s)
		}
	}
	for s := range r.checkpoints.own {
		if s < seq {
			delete(r.checkpoints.own, s)
			delete(r.checkpoints.snapshots, s)
		}
	}
	for s := range r.checkpoints.votes {
		if s < seq {
			delete(r.checkpoints.votes, s)
		}
	}
	if r.nextSeq < seq {
		r.nextSeq = seq
	}
	if r.transfer != nil && r.transfer.seq <= seq {
		r.transfer = nil
	}
	r.vc.noteStable(seq)
}

// stateTransfer is an ongoing fetch of the state at a certified checkpoint.
type stateTransfer struct {
	seq    uint64
	digest Digest
	from   []int // replicas that vouched for digest
	next   int   // which of them to ask next
}

func (r *Replica) startTransfer(seq uint64, d Digest) {
	if r.transfer != nil && r.transfer.seq >= seq {
		return
	}
	_, from, _ := r.checkpoints.certified(seq, r.q.Commit())
	r.transfer = &stateTransfer{seq: seq, digest: d, from: from}
	r.retryTransfer()
}

// retryTransfer asks the next vouching replica for the snapshot; a peer that is slow or
// lies is simply passed over on the next status tick.
func (r *Replica) retryTransfer() {
	t := r.transfer
	if t == nil {
		return
	}
	if t.seq <= r.lastExec {
		r.transfer = nil
		return
	}
	for range t.from {
		peer := t.from[t.next%len(t.from)]
		t.next++
		if peer != r.id {
			r.send(peer, &Fetch{Seq: t.seq, Replica: r.id})
			return
		}
	}
}

func (r *Replica) stepFetch(from int, m *Fetch) error {
	if m.Replica != from {
		return fmt.Errorf("%w: fetch names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	snap, ok := r.checkpoints.snapshots[m.Seq]
	if !ok {
		// Serve the newest stable state instead: the fetcher checks any certified one.
		snap, ok = r.checkpoints.snapshots[r.lowWater]
		if !ok {
			return nil
		}
		r.send(from, &Checkpoint{Seq: r.lowWater, State: r.checkpoints.own[r.lowWater], Replica: r.id})
		r.send(from, &State{Seq: r.lowWater, Snapshot: snap, Replica: r.id})
		return nil
	}
	r.send(from, &State{Seq: m.Seq, Snapshot: snap, Replica: r.id})
	return nil
}

// stepState installs a snapshot, but only one whose digest 2f+1 replicas certified: a
// single peer is never trusted with the state.
func (r *Replica) stepState(from int, m *State) error {
	if m.Replica != from {
		return fmt.Errorf("%w: state names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	if m.Seq <= r.lastExec {
		return nil
	}
	// The digest to check against comes from 2f+1 matching checkpoints, or from a
	// NEW-VIEW whose decision has f+1 replicas vouching for it: either way a correct
	// replica holds that state.
	cert, _, ok := r.checkpoints.certified(m.Seq, r.q.Commit())
	if !ok && r.transfer != nil && r.transfer.seq == m.Seq {
		cert, ok = r.transfer.digest, true
	}
	if !ok {
		return fmt.Errorf("%w: state for uncertified checkpoint %d", ErrRejected, m.Seq)
	}
	if sha256.Sum256(m.Snapshot) != cert {
		return fmt.Errorf("%w: state from replica %d does not match the certified digest", ErrRejected, from)
	}
	if err := r.installSnapshot(m.Snapshot); err != nil {
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	snap := append([]byte(nil), m.Snapshot...)
	for s, e := range r.log {
		if s <= m.Seq && !e.executed {
			e.executed, e.committed = true, true
		}
	}
	r.lastExec = m.Seq
	r.checkpoints.own[m.Seq] = cert
	r.checkpoints.snapshots[m.Seq] = snap
	for k, s := range r.inflight {
		if s <= m.Seq {
			delete(r.inflight, k)
		}
	}
	r.flags.StateInstalled = true
	r.makeStable(m.Seq)
	r.vc.noteProgress(r)
	r.executeReady()
	return nil
}

func (r *Replica) installSnapshot(b []byte) error {
	d := decoder{buf: b}
	app := d.take(maxBlobLen)
	if d.err != nil {
		return d.err
	}
	clients := newClientTable(r.cfg.ClientHistory)
	if err := clients.restore(&d); err != nil {
		return err
	}
	if len(d.buf) != 0 {
		return fmt.Errorf("%w: trailing bytes in snapshot", ErrDecode)
	}
	if err := r.app.Restore(app); err != nil {
		return err
	}
	r.clients = clients
	return nil
}
