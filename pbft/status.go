package pbft

import (
	"fmt"
	"slices"
)

// Phase is how far one sequence number has got at one replica.
type Phase uint8

// Phases, in protocol order.
const (
	PhaseNone       Phase = iota // nothing logged
	PhasePrePrepare              // pre-prepare accepted, not yet prepared
	PhasePrepared                // pre-prepare plus 2f matching prepares
	PhaseCommitted               // 2f+1 matching commits
)

func (p Phase) String() string {
	switch p {
	case PhasePrePrepare:
		return "pre-prepare"
	case PhasePrepared:
		return "prepared"
	case PhaseCommitted:
		return "committed"
	}
	return "none"
}

// SeqStatus is what one replica knows of one sequence number.
type SeqStatus struct {
	Phase Phase
	// PreparesFrom and CommitsFrom list the replicas whose prepare (commit) matching the
	// pre-prepare held for this number, in the view it was accepted in, has been logged.
	PreparesFrom []int
	CommitsFrom  []int
	Executed     bool
}

// Status reports on seq. Numbers below the stable checkpoint are answered from a bounded
// history of summaries kept when the log was truncated.
func (r *Replica) Status(seq uint64) SeqStatus {
	if e := r.log[seq]; e != nil {
		return entryStatus(e)
	}
	if seq <= r.lowWater {
		if s, ok := r.history.get(seq); ok {
			return s
		}
		if seq <= r.lastExec && seq > 0 {
			return SeqStatus{Phase: PhaseCommitted, Executed: true}
		}
	}
	return SeqStatus{}
}

func entryStatus(e *entry) SeqStatus {
	var s SeqStatus
	if e.pp == nil {
		return s
	}
	s.Phase = PhasePrePrepare
	if e.prepared {
		s.Phase = PhasePrepared
	}
	if e.committed || e.executed {
		s.Phase = PhaseCommitted
	}
	if vv := e.current(); vv != nil {
		s.PreparesFrom = vv.prepares.from(e.pp.Digest)
		s.CommitsFrom = vv.commits.from(e.pp.Digest)
	}
	s.Executed = e.executed
	return s
}

// statusHistory keeps a compact summary of truncated sequence numbers in a ring, so that
// a status query for an old number still answers while memory stays bounded. The ring is
// allocated whole (2.5 MB) when the first number is truncated: a fixed cost from the
// first checkpoint on, rather than a heap that keeps growing for 65,536 numbers.
type statusHistory struct {
	ring []summary
}

// summary is one truncated number: who prepared and committed it (bit i for replica i;
// replicas past 64 are not tracked once truncated).
type summary struct {
	seq      uint64
	digest   [8]byte // enough to match late votes against
	phase    Phase
	executed bool
	prepares uint64
	commits  uint64
}

const statusHistorySize = 1 << 16

func newStatusHistory() *statusHistory { return &statusHistory{} }

func (h *statusHistory) slot(seq uint64) *summary {
	if h.ring == nil {
		h.ring = make([]summary, statusHistorySize)
	}
	return &h.ring[seq%statusHistorySize]
}

func mask(ids []int) uint64 {
	var m uint64
	for _, i := range ids {
		if i < 64 {
			m |= 1 << i
		}
	}
	return m
}

func (h *statusHistory) keep(e *entry, n int) {
	if e.pp == nil {
		return
	}
	st := entryStatus(e)
	s := h.slot(e.seq)
	*s = summary{seq: e.seq, phase: st.Phase, executed: st.Executed, prepares: mask(st.PreparesFrom), commits: mask(st.CommitsFrom)}
	copy(s.digest[:], e.pp.Digest[:])
}

// late counts a prepare or commit that arrived after its number was truncated, so that
// the counts a status query reports do not depend on when the checkpoint became stable.
func (h *statusHistory) late(seq uint64, from int, d Digest, commit bool) {
	if int(seq%statusHistorySize) >= len(h.ring) || from >= 64 {
		return
	}
	s := &h.ring[seq%statusHistorySize]
	if s.seq != seq || [8]byte(d[:8]) != s.digest {
		return
	}
	if commit {
		s.commits |= 1 << from
	} else {
		s.prepares |= 1 << from
	}
}

func (h *statusHistory) get(seq uint64) (SeqStatus, bool) {
	if seq == 0 || int(seq%statusHistorySize) >= len(h.ring) {
		return SeqStatus{}, false
	}
	s := h.ring[seq%statusHistorySize]
	if s.seq != seq {
		return SeqStatus{}, false
	}
	out := SeqStatus{Phase: s.phase, Executed: s.executed}
	for i := 0; i < 64; i++ {
		if s.prepares&(1<<i) != 0 {
			out.PreparesFrom = append(out.PreparesFrom, i)
		}
		if s.commits&(1<<i) != 0 {
			out.CommitsFrom = append(out.CommitsFrom, i)
		}
	}
	return out, true
}

// retransmitBatch bounds how many sequence numbers one status message makes a replica
// resend, so that catching up a peer never floods the network.
const retransmitBatch = 64

// stepStatus answers a peer's status with what it lacks: this replica's own messages
// (pre-prepare if it was the primary, prepare, commit) for numbers the peer has not
// executed, its stable checkpoint if the peer is below it, and view-change evidence if the
// peer is in an older view. Only own messages are resent: a peer cannot relay another
// replica's MAC-authenticated messages.
func (r *Replica) stepStatus(from int, m *StatusMsg) error {
	if m.Replica != from {
		return fmt.Errorf("%w: status names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	r.answerCatchUp(from, m) // whatever the views: a commit certificate holds in any
	if m.View < r.view || (m.View == r.view && !r.viewActive) {
		r.retransmitViewChange(from)
	}
	if m.LowWater > r.peerLow[from] {
		r.peerLow[from] = m.LowWater
		r.checkClaimedStable(m.LowWater)
	}
	if m.LowWater < r.lowWater {
		// The peer lacks a stable checkpoint we have: a lost checkpoint message, or it is
		// behind and needs the certificate to fetch the state.
		if d, ok := r.checkpoints.own[r.lowWater]; ok {
			r.send(from, &Checkpoint{Seq: r.lowWater, State: d, Replica: r.id})
		}
	}
	r.resendUnstableCheckpoints(from, m.LowWater)
	if m.View < r.view || !r.viewActive {
		r.peerExec[from] = 0
		return nil
	}
	passive := m.View > r.view
	if passive {
		// The peer asked for a view nobody else joined; it follows ours passively, so it
		// still needs our messages. Its progress says nothing about our primary, though:
		// counted, it would keep this replica from ever suspecting the primary
		// (othersAhead) while too few replicas work in this view to make progress.
		r.peerExec[from] = 0
		m = &StatusMsg{View: r.view, LowWater: m.LowWater, LastExecuted: m.LastExecuted, Replica: m.Replica}
	}
	// Resend what this replica executed and the peer has not; if the peer made no progress
	// since its last status it may be stuck on a number nobody executed yet, so then resend
	// everything logged above its last executed.
	progressed := m.LastExecuted > r.peerExec[from]
	if !passive {
		r.peerExec[from] = m.LastExecuted
	}
	end := r.lastExec
	if !progressed || end == 0 {
		end = r.maxSeq
	}
	if m.LastExecuted >= end {
		return nil
	}
	start := m.LastExecuted + 1
	if start <= r.lowWater {
		start = r.lowWater + 1
	}
	sent := 0
	for s := start; s <= end && sent < retransmitBatch; s++ {
		e := r.log[s]
		if e == nil || e.pp == nil || e.pp.View != r.view {
			continue
		}
		sent++
		if r.q.Primary(e.pp.View) == r.id {
			r.send(from, e.pp)
		} else {
			vv := e.current()
			if vv != nil && vv.prepares.has[r.id] {
				r.send(from, &Prepare{View: e.pp.View, Seq: s, Digest: vv.prepares.digest[r.id], Replica: r.id})
			}
		}
		if vv := e.current(); vv != nil && vv.commits.has[r.id] {
			r.send(from, &Commit{View: e.pp.View, Seq: s, Digest: vv.commits.digest[r.id], Replica: r.id})
		}
	}
	return nil
}

// resendUnstableCheckpoints sends a peer whose stable checkpoint is below them this
// replica's own checkpoints that are not stable here yet. A lost CHECKPOINT is otherwise
// never sent again (the answer above sends only the stable one): replicas that each
// missed another's could hold a checkpoint that never becomes stable at them, while the
// few that have it stable truncated the commits below it, and a replica further behind
// then got neither the commits nor f+1 claims of the checkpoint (PBFT_LONG seed 105 of
// TestViewChangePrimaryCrashesMidViewChange, n=7). Its own checkpoints lie within its
// window (LogWindow/CheckpointInterval of them, and a reconfiguration's): a few small
// messages, each this replica's own, so safe to repeat.
func (r *Replica) resendUnstableCheckpoints(to int, peerLow uint64) {
	var seqs []uint64
	for seq := range r.checkpoints.own {
		if seq > r.lowWater && seq > peerLow {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs) // deterministic order
	for _, seq := range seqs {
		r.send(to, &Checkpoint{Seq: seq, State: r.checkpoints.own[seq], Replica: r.id})
	}
}
