package pbft

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
)

// joinState is a joiner's wait for the state that starts its configuration: the
// checkpoint at the reconfiguration, certified by a quorum of the configuration it ends
// (prev). Votes are kept by id, whatever configuration tagged them (an old member that
// continues may send it tagged with the new one), and only ids of prev count. The state
// is fetched from the vouching ids in turn, checked against the certified digest, and
// installed only if it is the start of the configuration the joiner was told it joins.
type joinState struct {
	prev  Membership
	q     Quorum
	votes map[string]joinVote // each old or new member's latest checkpoint claim
	floor uint64              // certificates at or below this are not the start: skip them
	// byOld and byOwn say who certified the state being fetched: a quorum of the old
	// membership (the start must be) or f'+1 of the joiner's own configuration (a later
	// state of it must be: a joiner admitted, or restarted, after its configuration moved
	// past its start). retry is a number whose state turned out to need the other
	// certificate (retryOld: the old membership's), fetched again once it has it.
	byOld, byOwn bool
	retry        uint64
	retryOld     bool

	// the transfer under way
	seq    uint64
	digest Digest
	from   []string
	next   int
	asked  string
	buf    []byte
	total  uint64
	seen   int
	stalls int
	liars  map[string]bool
}

type joinVote struct {
	seq    uint64
	digest Digest
}

func newJoin(prev Membership) *joinState {
	return &joinState{prev: prev, q: NewQuorum(len(prev.Members)), votes: map[string]joinVote{}, liars: map[string]bool{}}
}

// Joining reports whether this replica still waits for the state that starts its
// configuration, or for the reconfiguration that admits it (Config.Join).
func (r *Replica) Joining() bool { return r.join != nil || r.awaiting }

func (r *Replica) joinCheckpoint(name string, from int, m *Checkpoint) error {
	j := r.join
	if m.Replica != from {
		return fmt.Errorf("%w: checkpoint names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	cur := r.conf.cur
	if (j.prev.Index(name) < 0 && (cur.Index(name) < 0 || name == r.self)) || m.Seq <= j.floor {
		return nil
	}
	if v, ok := j.votes[name]; ok && v.seq > m.Seq {
		return nil
	}
	j.votes[name] = joinVote{m.Seq, m.State}
	var vouchers []string
	old, own := 0, 0
	for id, v := range j.votes {
		if v.seq == m.Seq && v.digest == m.State {
			vouchers = append(vouchers, id)
			if j.prev.Index(id) >= 0 {
				old++
			}
			if cur.Index(id) >= 0 {
				own++
			}
		}
	}
	sort.Strings(vouchers)
	// The start is certified by a quorum of the old membership. A later state of the
	// joiner's own configuration by f'+1 of its members: one of them is correct, so it is
	// the state correct members executed; a quorum might need the joiner itself (its
	// configuration lost a member meanwhile and waits for it to order anything).
	byOld, byOwn := old >= j.q.Commit(), own >= NewQuorum(len(cur.Members)).Weak()
	if m.Seq == j.seq && m.State == j.digest {
		j.from = vouchers // more members vouch for the state being fetched
		j.byOld, j.byOwn = byOld, byOwn
	}
	switch {
	case !byOld && !byOwn || m.Seq <= j.seq:
		return nil
	case m.Seq == j.retry && (j.retryOld && !byOld || !j.retryOld && !byOwn):
		return nil // its state needs the other certificate, not there yet
	}
	j.byOld, j.byOwn = byOld, byOwn
	j.seq, j.digest, j.from, j.next = m.Seq, m.State, vouchers, 0
	j.buf, j.total, j.seen, j.stalls, j.asked = nil, 0, 0, 0, ""
	clear(j.liars)
	r.joinAsk()
	return nil
}

// joinAsk asks the next vouching old member for the rest of the state.
func (r *Replica) joinAsk() {
	j := r.join
	if j == nil || j.seq == 0 {
		return
	}
	if peer, ok := nextSource(j.from, &j.next, j.liars, r.self); ok {
		j.asked, j.seen = peer, len(j.buf)
		r.joinFetch()
	}
}

func (r *Replica) joinFetch() {
	j := r.join
	r.out = append(r.out, Outbound{Peer: j.asked, Conf: r.conf.cur.Conf,
		Msg: &Fetch{Seq: j.seq, Offset: uint64(len(j.buf)), Replica: r.id}})
}

// tickJoin runs each status period: it announces the joiner (continuing members answer
// with their stable checkpoint) and moves on from a peer that stalls.
func (r *Replica) tickJoin() {
	j := r.join
	r.broadcast(&StatusMsg{View: 0, Replica: r.id})
	if j.seq == 0 {
		return
	}
	if j.asked != "" && len(j.buf) > j.seen {
		j.seen, j.stalls = len(j.buf), 0
		return
	}
	j.stalls++
	if j.asked != "" && j.stalls == 1 {
		r.joinFetch()
		return
	}
	j.stalls = 0
	r.joinAsk()
}

// joinState takes a piece of the state and, once whole and matching the certificate,
// installs it: the configuration in it must be the one ending prev at the certified
// number and starting the configuration this replica joins.
func (r *Replica) joinState(conf uint64, from int, m *State) error {
	j := r.join
	if m.Replica != from {
		return fmt.Errorf("%w: state names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	if r.MembersOf(conf)[from] != j.asked || j.seq == 0 || m.Seq != j.seq {
		return nil // not asked of this peer (any more)
	}
	switch {
	case m.Total > MaxSnapshot:
		return fmt.Errorf("%w: state of %d bytes exceeds %d", ErrRejected, m.Total, MaxSnapshot)
	case m.Offset > m.Total || uint64(len(m.Snapshot)) > m.Total-m.Offset:
		return fmt.Errorf("%w: state piece [%d, +%d) outside its %d bytes", ErrRejected, m.Offset, len(m.Snapshot), m.Total)
	case len(m.Snapshot) == 0 && m.Offset < m.Total:
		return fmt.Errorf("%w: empty state piece at %d of %d", ErrRejected, m.Offset, m.Total)
	case m.Offset != uint64(len(j.buf)):
		return nil
	}
	if len(j.buf) == 0 {
		j.total = m.Total
	} else if m.Total != j.total {
		r.joinRestart()
		return fmt.Errorf("%w: %s changed the state's size mid-transfer", ErrRejected, j.asked)
	}
	j.buf = append(j.buf, m.Snapshot...)
	if uint64(len(j.buf)) < j.total {
		r.joinFetch()
		return nil
	}
	snap := j.buf
	if sha256.Sum256(snap) != j.digest {
		r.joinRestart()
		return fmt.Errorf("%w: state from %s does not match the certified digest", ErrRejected, j.asked)
	}
	_, _, cs, err := decodeSnapshot(snap, r.cfg.ClientHistory)
	if err != nil {
		r.joinRestart()
		return fmt.Errorf("%w: certified state: %v", ErrRejected, err)
	}
	start := cs.next != nil && cs.nextSeq == j.seq && cs.cur.Conf == j.prev.Conf &&
		slices.Equal(cs.cur.Members, j.prev.Members) &&
		cs.next.Conf == r.conf.cur.Conf && slices.Equal(cs.next.Members, r.conf.cur.Members)
	later := cs.next == nil && cs.cur.Conf == r.conf.cur.Conf && slices.Equal(cs.cur.Members, r.conf.cur.Members)
	switch {
	case start && j.byOld, later && j.byOwn:
	case start || later:
		// The right kind of state, but not yet certified by whom that kind needs.
		j.retry, j.retryOld, j.seq, j.buf = j.seq, start, 0, nil
		return nil
	default:
		// A certified checkpoint, but not one this joiner may start from.
		j.floor, j.seq, j.buf = j.seq, 0, nil
		return nil
	}
	own := later
	if err := r.installSnapshot(snap); err != nil {
		r.joinRestart()
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	seq := j.seq
	if own {
		// Already the configuration in force: take part from here as a member.
		r.join = nil
		r.setMembership(r.conf.cur)
	}
	r.lastExec = seq
	r.checkpoints.own[seq] = j.digest
	r.checkpoints.snapshots[seq] = snap
	r.nextReady.StateInstalled = true
	r.makeStable(seq) // the start: switches, since the state's configuration has its next decided at seq
	return nil
}

// joinRestart drops a bad transfer; the peer that served it is not asked first again.
func (r *Replica) joinRestart() {
	j := r.join
	j.liars[j.asked] = true
	j.buf, j.total, j.seen, j.stalls = nil, 0, 0, 0
	r.joinAsk()
}
