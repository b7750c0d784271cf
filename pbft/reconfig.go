package pbft

import (
	"fmt"
	"slices"
)

// Reconfiguration: changing the membership through the protocol itself.
//
// A reconfiguration is a request whose operation is ReconfigOp (membership.go). The
// primary orders it alone in its batch at some number s and assigns nothing above s in
// this configuration (barrier); backups refuse a pre-prepare that breaks either rule.
// Executing s (only the administrator's request, for the configuration in force) decides
// the next configuration: it becomes part of the replicated state and every member takes
// a checkpoint at s, whatever K. When that checkpoint is stable (a quorum of the OLD
// membership certified it) each replica switches (enterNext): continuing members start
// configuration c+1 in view 0 with their new indices and quorum, s as their stable
// checkpoint; leaving members stop ordering and only serve state; joiners (Config.JoinFrom)
// fetch the state at s, check it against the old membership's certificate and then take
// part. Every message travels with its configuration (StepIn, Outbound.Conf); views are
// compared only within one.

// initConfig sets the configuration from Config.
func (r *Replica) initConfig() {
	r.prevID, r.member = -1, true
	if r.cfg.Members == nil {
		return
	}
	r.self = r.cfg.Members[r.cfg.ID]
	r.conf = configState{cur: Membership{Conf: r.cfg.Configuration, Members: slices.Clone(r.cfg.Members)}}
	if j := r.cfg.JoinFrom; j != nil {
		prev := Membership{Conf: j.Conf, Members: slices.Clone(j.Members)}
		r.prev, r.prevID = &prev, prev.Index(r.self)
		r.join = newJoin(prev)
	}
	if r.cfg.Join {
		r.awaiting, r.member = true, false
	}
}

// Configuration returns the number of the configuration this replica is in.
func (r *Replica) Configuration() uint64 { return r.conf.cur.Conf }

// Members returns the ids of the current configuration, in rotation order (nil when the
// replica was configured without ids).
func (r *Replica) Members() []string { return slices.Clone(r.conf.cur.Members) }

// IsMember is false for a replica that left the membership, or has not joined yet.
func (r *Replica) IsMember() bool { return r.member && r.join == nil && !r.awaiting }

// Self returns this replica's id (empty without Config.Members).
func (r *Replica) Self() string { return r.self }

// MembersOf returns the members of configuration conf as far as this replica knows them:
// the current one, the one before and the one decided to follow; nil otherwise. A driver
// reads the sender of a message tagged conf with it.
func (r *Replica) MembersOf(conf uint64) []string {
	switch {
	case conf == r.conf.cur.Conf:
		return r.conf.cur.Members
	case r.conf.next != nil && conf == r.conf.next.Conf:
		return r.conf.next.Members
	case r.prev != nil && conf == r.prev.Conf:
		return r.prev.Members
	}
	return r.chain.members(conf) // older ones, as the transition certificates name them
}

// StepIn feeds a message that came tagged with configuration conf from the replica at
// index from of that configuration (or FromClient). Messages of the current
// configuration go to Step; of the one before, only what serves the transition (the
// checkpoint that started this one, state transfer, status that asks for them); of the
// one that follows, only state transfer until this replica has switched.
func (r *Replica) StepIn(conf uint64, from int, m Message) error {
	switch m := m.(type) {
	case *Chain:
		return r.stepChain(m) // certifies itself, whoever relays it
	case *AskAdmission:
		return r.answerAdmission(m) // the driver checked the joiner is the sender
	}
	if r.awaiting {
		return r.admit(from, m)
	}
	if t, ok := m.(*Transition); ok {
		return r.stepTransition(t)
	}
	cur := r.conf.cur.Conf
	if from == FromClient {
		if !r.IsMember() {
			return fmt.Errorf("%w: not a member of configuration %d", ErrRejected, cur)
		}
		return r.step(from, m)
	}
	members := r.MembersOf(conf)
	if from < 0 || (members != nil && from >= len(members)) {
		return fmt.Errorf("%w: sender %d out of range", ErrRejected, from)
	}
	switch {
	case conf == cur:
		if r.IsMember() {
			return r.step(from, m)
		}
		switch m := m.(type) {
		case *Fetch:
			return r.serveFetch(conf, from, m)
		case *State:
			if r.join != nil {
				return r.joinState(conf, from, m)
			}
		case *Checkpoint:
			if r.join != nil && members != nil {
				return r.joinCheckpoint(members[from], from, m)
			}
		}
		return fmt.Errorf("%w: %s: not a member of configuration %d", ErrRejected, m.Kind(), cur)
	case r.conf.next != nil && conf == r.conf.next.Conf:
		if m, ok := m.(*Fetch); ok {
			return r.serveFetch(conf, from, m)
		}
		return fmt.Errorf("%w: configuration %d starts at the stable checkpoint %d", ErrRejected, conf, r.conf.nextSeq)
	case r.prev != nil && conf == r.prev.Conf:
		switch m := m.(type) {
		case *Fetch:
			return r.serveFetch(conf, from, m)
		case *StatusMsg:
			return r.statusFromPrev(from, m)
		case *Checkpoint:
			if r.join != nil {
				return r.joinCheckpoint(members[from], from, m)
			}
			return nil // the transition's checkpoint, late: old news
		case *State:
			if r.join != nil {
				return r.joinState(conf, from, m)
			}
		}
		return fmt.Errorf("%w: %s of ended configuration %d", ErrRejected, m.Kind(), conf)
	}
	if st, ok := m.(*StatusMsg); ok && r.answerChain(conf, from, st) {
		return nil
	}
	return fmt.Errorf("%w: %s of configuration %d in configuration %d", ErrRejected, m.Kind(), conf, cur)
}

// executeReconfig executes a reconfiguration request of a batch of size n at seq and
// returns its result. Every check depends only on the request and replicated state, so
// every replica decides alike; a refusal changes nothing.
func (r *Replica) executeReconfig(req *Request, n int, seq uint64) []byte {
	refuse := func(why string) []byte { return []byte(ReconfigRefusedPrefix + why) }
	switch {
	case r.cfg.Admin == "" || req.Gateway != r.cfg.Admin:
		return refuse(fmt.Sprintf("%q is not the administrator", req.Gateway))
	case n != 1:
		return refuse("not alone in its batch")
	case r.conf.next != nil:
		return refuse("a reconfiguration is already in progress")
	case len(r.conf.cur.Members) == 0:
		return refuse("this cluster was configured without member ids")
	}
	ends, m, err := DecodeReconfigChange(req.Op)
	if err != nil {
		return refuse(err.Error())
	}
	if m.Conf != r.conf.cur.Conf {
		return refuse(fmt.Sprintf("configuration %d is not in force (%d is)", m.Conf, r.conf.cur.Conf))
	}
	if !slices.Equal(ends.Members, r.conf.cur.Members) {
		// Joiners trust the members named here to certify their state (admit.go).
		return refuse(fmt.Sprintf("it names members %q, configuration %d has %q", ends.Members, m.Conf, r.conf.cur.Members))
	}
	next := Membership{Conf: r.conf.cur.Conf + 1, Members: slices.Clone(m.Members)}
	r.conf.next, r.conf.nextSeq = &next, seq
	r.confVersion++
	r.keepAdmission(req, true)
	return reconfigOKResult(next)
}

// checkReconfigBatch applies a backup's rules to a pre-prepare in the active view: a
// reconfiguration goes alone, at a number above which nothing was ordered in this view,
// and nothing goes above an accepted reconfiguration.
func (r *Replica) checkReconfigBatch(m *PrePrepare) error {
	if r.barrier != 0 && m.Seq > r.barrier {
		return fmt.Errorf("%w: pre-prepare %d above the reconfiguration at %d", ErrRejected, m.Seq, r.barrier)
	}
	if !isReconfigBatch(m.Batch) {
		return nil
	}
	if len(m.Batch) != 1 {
		return fmt.Errorf("%w: reconfiguration not alone in its batch", ErrRejected)
	}
	for s := m.Seq + 1; s <= r.maxSeq; s++ {
		if e := r.log[s]; e != nil && e.pp != nil && e.pp.View == m.View {
			return fmt.Errorf("%w: reconfiguration at %d below ordered %d", ErrRejected, m.Seq, s)
		}
	}
	return nil
}

// noteReconfigAccepted raises the barrier when pp orders a reconfiguration.
func (r *Replica) noteReconfigAccepted(pp *PrePrepare) {
	if isReconfigBatch(pp.Batch) && (r.barrier == 0 || pp.Seq < r.barrier) {
		r.barrier = pp.Seq
	}
}

// setMembership makes m the configuration in force, from view 0.
func (r *Replica) setMembership(m Membership) {
	r.conf = configState{cur: Membership{Conf: m.Conf, Members: slices.Clone(m.Members)}}
	r.confVersion++
	idx := m.Index(r.self)
	r.member, r.id = idx >= 0, idx
	r.q = NewQuorum(len(m.Members))
	r.view, r.viewActive, r.followView = 0, true, 0
	r.peerExec, r.peerLow = make([]uint64, r.q.N), make([]uint64, r.q.N)
	r.catch = newCatchUp(r.q.N) // indices and quorum are the new configuration's
	r.vc = newViewChangeState(r.cfg.ViewChangeTicks)
	r.barrier = 0
	r.checkpoints.votes = make(map[uint64]map[int]Digest)
	r.nextReady.ViewChanged = true
}

// adoptConfig takes the configuration of an installed snapshot.
func (r *Replica) adoptConfig(c configState) {
	if c.legacy {
		return
	}
	if len(c.cur.Members) == 0 {
		r.conf = c // a cluster without ids: nothing to follow
		return
	}
	if r.awaiting {
		// A joiner restarted from its log after it joined: its state says where it is.
		r.awaiting, r.member = false, true
		r.setMembership(c.cur)
	}
	if c.cur.Conf != r.conf.cur.Conf || !slices.Equal(c.cur.Members, r.conf.cur.Members) {
		r.setMembership(c.cur)
	}
	r.conf.next, r.conf.nextSeq = c.next, c.nextSeq
	r.confVersion++
}

// enterNext switches to the decided configuration once the checkpoint at its
// reconfiguration is stable here.
func (r *Replica) enterNext() {
	old, oldID := r.conf.cur, -1
	if r.member {
		oldID = r.id
	}
	seq := r.conf.nextSeq
	r.transSeq, r.transDigest = seq, r.checkpoints.own[seq]
	r.setMembership(*r.conf.next)
	r.prev, r.prevID = &old, oldID
	r.join = nil
	r.nextSeq = seq
	for s := range r.log {
		if s > seq {
			delete(r.log, s)
		}
	}
	clear(r.inflight)
	r.requestCompaction()
	if r.member && !r.IsPrimary() {
		// Requests queued for the old primary go to the new one.
		for _, req := range r.pending.all() {
			r.send(r.Primary(), req)
		}
	}
	if r.member {
		r.vc.noteWork(r)
	}
	r.signTransition(old, seq)
}

// statusFromPrev answers a replica still in the configuration before this one with the
// checkpoint that ended it: with a quorum of those it fetches the state and switches.
func (r *Replica) statusFromPrev(from int, m *StatusMsg) error {
	if m.Replica != from {
		return fmt.Errorf("%w: status names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	if r.prevID >= 0 && m.LowWater < r.transSeq {
		r.out = append(r.out, Outbound{To: from, Conf: r.prev.Conf,
			Msg: &Checkpoint{Seq: r.transSeq, State: r.transDigest, Replica: r.prevID}})
	}
	return nil
}

// serveFetch serves state transfer to a replica of another configuration (or to one
// that is a member of a configuration this replica is not): by name, tagged with a
// configuration both know and in which this replica has an index.
func (r *Replica) serveFetch(conf uint64, from int, m *Fetch) error {
	if m.Replica != from {
		return fmt.Errorf("%w: fetch names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	peer := r.MembersOf(conf)[from]
	tag, me := conf, Membership{Members: r.MembersOf(conf)}.Index(r.self)
	if me < 0 && r.member {
		tag, me = r.conf.cur.Conf, r.id
	}
	if me < 0 && r.prevID >= 0 {
		tag, me = r.prev.Conf, r.prevID
	}
	if me < 0 {
		return fmt.Errorf("%w: fetch from a configuration this replica has no index in", ErrRejected)
	}
	return r.serveState(m, me, func(msg Message) {
		r.out = append(r.out, Outbound{Peer: peer, Conf: tag, Msg: msg})
	})
}

// checkpointAt reports whether a checkpoint may fall at seq: on a multiple of K, or at the
// reconfiguration that started this configuration or will end it.
func (r *Replica) checkpointAt(seq uint64) bool {
	return seq%r.cfg.CheckpointInterval == 0 || seq == r.transSeq || (r.conf.next != nil && seq == r.conf.nextSeq)
}
