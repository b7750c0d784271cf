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
	r.persist(&State{Seq: seq, Total: uint64(len(snap)), Snapshot: snap, Replica: r.id})
	r.broadcast(cp)
	r.addCheckpointVote(r.id, seq, d)
}

func (r *Replica) stepCheckpoint(from int, m *Checkpoint) error {
	if m.Replica != from {
		return fmt.Errorf("%w: checkpoint names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	if m.Seq <= r.lowWater {
		return nil // old news
	}
	if m.Seq%r.cfg.CheckpointInterval != 0 && m.Seq > r.lowWater+r.cfg.LogWindow {
		// Off the K boundaries only a reconfiguration's checkpoint, which is inside the
		// window: what one peer can make us store stays bounded.
		return nil
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
			r.transfer = newTransfer(seq, d, reps)
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
	if r.conf.next != nil && seq >= r.conf.nextSeq {
		r.enterNext()
	}
}

// stateTransfer is an ongoing fetch of the state at a certified checkpoint. The snapshot
// arrives in pieces, asked of one peer at a time; pieces from anyone else are ignored, so
// a Byzantine peer can spoil only a transfer it was asked to serve, and the whole is
// checked against the certified digest before anything is installed. The replica stays
// with a peer while it makes progress (a lost message is asked again), moves on when it
// stalls, and after a snapshot that does not match starts over with another peer, never
// again asking one that served a whole wrong snapshot by itself.
type stateTransfer struct {
	seq     uint64
	digest  Digest
	from    []int // replicas that vouched for digest
	next    int   // which of them to ask next
	asked   int   // the peer whose pieces are taken; -1 before the first fetch
	buf     []byte
	total   uint64
	sources map[int]bool // peers whose pieces are in buf
	liars   map[int]bool // peers that alone served a snapshot that did not match
	seen    int          // len(buf) at the last status tick
	stalls  int          // status ticks in a row without progress
}

func newTransfer(seq uint64, d Digest, from []int) *stateTransfer {
	return &stateTransfer{seq: seq, digest: d, from: from, asked: -1, sources: map[int]bool{}, liars: map[int]bool{}}
}

func (r *Replica) startTransfer(seq uint64, d Digest) {
	if r.transfer != nil && r.transfer.seq >= seq {
		return
	}
	_, from, _ := r.checkpoints.certified(seq, r.q.Commit())
	r.transfer = newTransfer(seq, d, from)
	r.retryTransfer()
}

// tickTransfer runs each status period: a transfer that made progress goes on; one that
// did not asks its peer again once (a message may have been lost), then moves on.
func (r *Replica) tickTransfer() {
	t := r.transfer
	if t == nil {
		return
	}
	if t.asked >= 0 && len(t.buf) > t.seen {
		t.seen, t.stalls = len(t.buf), 0
		return
	}
	t.stalls++
	if t.asked >= 0 && t.stalls == 1 && t.seq > r.lastExec {
		r.send(t.asked, &Fetch{Seq: t.seq, Offset: uint64(len(t.buf)), Replica: r.id})
		return
	}
	t.stalls = 0
	r.retryTransfer()
}

// retryTransfer asks the next vouching replica for the rest of the snapshot. Honest
// replicas hold identical snapshots, so the next one goes on from the same offset.
func (r *Replica) retryTransfer() {
	t := r.transfer
	if t == nil {
		return
	}
	if t.seq <= r.lastExec {
		r.transfer = nil
		return
	}
	if peer, ok := nextSource(t.from, &t.next, t.liars, r.id); ok {
		t.asked, t.seen = peer, len(t.buf)
		r.send(peer, &Fetch{Seq: t.seq, Offset: uint64(len(t.buf)), Replica: r.id})
		return
	}
}

func (r *Replica) stepFetch(from int, m *Fetch) error {
	if m.Replica != from {
		return fmt.Errorf("%w: fetch names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	return r.serveState(m, r.id, func(msg Message) { r.send(from, msg) })
}

// serveState answers a fetch with a piece of the state, signing as replica me; reply
// sends to the fetcher.
func (r *Replica) serveState(m *Fetch, me int, reply func(Message)) error {
	seq, offset := m.Seq, m.Offset
	snap, ok := r.checkpoints.snapshots[seq]
	if !ok {
		// Serve the newest stable state instead, from its start: the fetcher checks any
		// certified one.
		seq, offset = r.lowWater, 0
		if snap, ok = r.checkpoints.snapshots[seq]; !ok {
			return nil
		}
		reply(&Checkpoint{Seq: seq, State: r.checkpoints.own[seq], Replica: me})
	}
	if offset > uint64(len(snap)) {
		return fmt.Errorf("%w: fetch from offset %d of a %d-byte state", ErrRejected, offset, len(snap))
	}
	end := min(offset+uint64(r.cfg.StateChunk), uint64(len(snap)))
	reply(&State{Seq: seq, Offset: offset, Total: uint64(len(snap)), Snapshot: snap[offset:end], Replica: me})
	return nil
}

// stepState takes a piece of a snapshot and, once it has the whole, installs it, but only
// if its digest is the one 2f+1 replicas certified: a single peer is never trusted with
// the state.
func (r *Replica) stepState(from int, m *State) error {
	if m.Replica != from {
		return fmt.Errorf("%w: state names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	if m.Seq <= r.lastExec {
		return nil
	}
	t := r.transfer
	if t == nil || from != t.asked {
		return nil // not asked of this peer (any more)
	}
	// The digest to check against comes from 2f+1 matching checkpoints, or from a
	// NEW-VIEW or f+1 stable claims whose digest a correct replica vouches for: either
	// way a correct replica holds that state.
	cert, vouchers, ok := r.checkpoints.certified(m.Seq, r.q.Commit())
	if !ok && t.seq == m.Seq {
		cert, vouchers, ok = t.digest, t.from, true
	}
	if !ok {
		return fmt.Errorf("%w: state for uncertified checkpoint %d", ErrRejected, m.Seq)
	}
	switch {
	case m.Total > MaxSnapshot:
		return fmt.Errorf("%w: state of %d bytes exceeds %d", ErrRejected, m.Total, MaxSnapshot)
	case m.Offset > m.Total || uint64(len(m.Snapshot)) > m.Total-m.Offset:
		return fmt.Errorf("%w: state piece [%d, +%d) outside its %d bytes", ErrRejected, m.Offset, len(m.Snapshot), m.Total)
	case len(m.Snapshot) == 0 && m.Offset < m.Total:
		return fmt.Errorf("%w: empty state piece at %d of %d", ErrRejected, m.Offset, m.Total)
	}
	if t.seq != m.Seq {
		// The peer served a newer stable state than the one asked for: fetch that instead.
		if m.Seq < t.seq || m.Offset != 0 {
			return nil
		}
		t = newTransfer(m.Seq, cert, vouchers)
		t.asked = from
		r.transfer = t
	}
	if m.Offset != uint64(len(t.buf)) {
		return nil // a repeat or a piece overtaken by a retry; the next fetch asks again
	}
	if len(t.buf) == 0 {
		t.total = m.Total
		t.buf = make([]byte, 0, m.Total)
	} else if m.Total != t.total {
		t.restart(from)
		r.retryTransfer()
		return fmt.Errorf("%w: replica %d changed the state's size mid-transfer", ErrRejected, from)
	}
	t.buf = append(t.buf, m.Snapshot...)
	t.sources[from] = true
	if uint64(len(t.buf)) < t.total {
		r.send(from, &Fetch{Seq: t.seq, Offset: uint64(len(t.buf)), Replica: r.id})
		return nil
	}
	snap := t.buf
	if sha256.Sum256(snap) != cert {
		t.restart(from)
		r.retryTransfer()
		return fmt.Errorf("%w: state from replica %d does not match the certified digest", ErrRejected, from)
	}
	t.buf, t.total = nil, 0
	if err := r.installSnapshot(snap); err != nil {
		t.restart(from)
		r.retryTransfer()
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
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
	r.nextReady.StateInstalled = true
	r.makeStable(m.Seq)
	r.vc.noteProgress(r)
	r.executeReady()
	return nil
}

// restart drops what was fetched after a bad piece from peer; if peer served all of it,
// it is not asked again in this transfer.
func (t *stateTransfer) restart(peer int) {
	if len(t.sources) == 1 && t.sources[peer] {
		t.liars[peer] = true
	}
	t.buf, t.total, t.seen, t.stalls = nil, 0, 0, 0
	clear(t.sources)
}

func (r *Replica) installSnapshot(b []byte) error {
	app, clients, conf, err := decodeSnapshot(b, r.cfg.ClientHistory)
	if err != nil {
		return err
	}
	if err := r.app.Restore(app); err != nil {
		return err
	}
	r.clients = clients
	r.adoptConfig(conf)
	return nil
}

// decodeSnapshot splits a snapshot into the application's part, the client table and
// the configuration.
func decodeSnapshot(b []byte, history int) ([]byte, *clientTable, configState, error) {
	d := decoder{buf: b}
	app := d.take(MaxSnapshot)
	if d.err != nil {
		return nil, nil, configState{}, d.err
	}
	clients := newClientTable(history)
	if err := clients.restore(&d); err != nil {
		return nil, nil, configState{}, err
	}
	conf := d.configState()
	if d.err != nil {
		return nil, nil, configState{}, d.err
	}
	if len(d.buf) != 0 {
		return nil, nil, configState{}, fmt.Errorf("%w: trailing bytes in snapshot", ErrDecode)
	}
	return app, clients, conf, nil
}

// nextSource picks the next replica to fetch state from, in turn from *next: one not
// caught lying first, any but self when all were.
func nextSource[T comparable](from []T, next *int, liars map[T]bool, self T) (T, bool) {
	for pass := range 2 {
		for range from {
			peer := from[*next%len(from)]
			*next++
			if peer != self && (pass == 1 || !liars[peer]) {
				return peer, true
			}
		}
	}
	var none T
	return none, false
}
