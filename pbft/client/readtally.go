package client

import (
	"bytes"

	"github.com/pbft-nats/pbft/pbft"
)

// The read-only replies of a ReplySet are grouped by result as they arrive, so that a
// reader waiting for q matching ones looks at a count instead of regrouping every reply
// at every arrival. The rule is pbft.AcceptReplies': each replica's latest reply counts
// once, replies match on the result alone (each replica reads at its own last executed
// number), and a tie goes to the smaller result. Only replies of the configuration in
// force count: a read never mixes members of two configurations.

// roGroup counts the read-only replies of one configuration that agree on one result.
type roGroup struct {
	conf    uint64
	value   []byte
	members int
}

// inForce reports whether a reply of configuration conf counts for a read: it is of
// the configuration the client follows (s.mu held).
func (s *ReplySet) inForce(conf uint64) bool {
	return s.owner == nil || conf == s.owner.mem.Load().conf
}

// roReplied is how many replicas of the configuration in force sent a read-only reply
// (s.mu held).
func (s *ReplySet) roReplied() int {
	n := 0
	for _, r := range s.readOnly {
		if s.inForce(r.Conf) {
			n++
		}
	}
	return n
}

// tallyReadOnly makes r from's read-only vote, in place of any earlier one (s.mu held).
func (s *ReplySet) tallyReadOnly(from string, r *pbft.Reply) {
	if prev := s.readOnly[from]; prev != nil {
		if i := s.roGroupOf(prev.Conf, prev.Result); i >= 0 {
			if s.roGroups[i].members--; s.roGroups[i].members == 0 {
				// Drop it: a faulty replica changing its reply must not grow the list.
				last := len(s.roGroups) - 1
				s.roGroups[i] = s.roGroups[last]
				s.roGroups = s.roGroups[:last]
			}
		}
	}
	s.readOnly[from] = r
	if i := s.roGroupOf(r.Conf, r.Result); i >= 0 {
		s.roGroups[i].members++
	} else {
		s.roGroups = append(s.roGroups, roGroup{conf: r.Conf, value: r.Result, members: 1})
	}
	s.wakeReadOnly()
}

// roWaiter is a reader waiting for a group of need matching read-only replies or replies
// from all replicas.
type roWaiter struct {
	need, all int
	ch        chan struct{}
}

// ReadOnlyDone returns a channel closed once the largest group of matching read-only
// replies has need members or all replicas sent one: a reader wakes once, not at every
// reply.
func (s *ReplySet) ReadOnlyDone(need, all int) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := roWaiter{need: need, all: all, ch: make(chan struct{})}
	if s.roDone(w) {
		close(w.ch)
	} else {
		s.roWaiters = append(s.roWaiters, w)
	}
	return w.ch
}

func (s *ReplySet) roDone(w roWaiter) bool {
	i := s.roLeader()
	return s.roReplied() >= w.all || i >= 0 && s.roGroups[i].members >= w.need
}

// wakeReadOnly closes the channels of the waiters whose condition now holds (s.mu held).
func (s *ReplySet) wakeReadOnly() {
	kept := s.roWaiters[:0]
	for _, w := range s.roWaiters {
		if s.roDone(w) {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(s.roWaiters[len(kept):])
	s.roWaiters = kept
}

func (s *ReplySet) roGroupOf(conf uint64, v []byte) int {
	for i := range s.roGroups {
		if s.roGroups[i].conf == conf && bytes.Equal(s.roGroups[i].value, v) {
			return i
		}
	}
	return -1
}

// roLeader is the largest group of the configuration in force (ties: the smaller
// result), or -1 (s.mu held).
func (s *ReplySet) roLeader() int {
	best := -1
	for i, g := range s.roGroups {
		if !s.inForce(g.conf) {
			continue
		}
		if best < 0 || g.members > s.roGroups[best].members ||
			g.members == s.roGroups[best].members && bytes.Compare(g.value, s.roGroups[best].value) < 0 {
			best = i
		}
	}
	return best
}

// ReadOnlyTally returns the size of the largest group of matching read-only replies and
// how many replicas sent one; it allocates nothing.
func (s *ReplySet) ReadOnlyTally() (best, replied int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.roLeader(); i >= 0 {
		best = s.roGroups[i].members
	}
	return best, s.roReplied()
}

// ReadOnlyBest returns the largest group of read-only replies with the same result (a
// read's replies may come from different sequence numbers: each replica reads its
// current state) and the set of replicas that sent one. Replicas are told apart by their
// authenticated ids, not by the index a reply names.
func (s *ReplySet) ReadOnlyBest() (Result, map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make(map[string]bool, len(s.readOnly))
	for from, r := range s.readOnly {
		if s.inForce(r.Conf) {
			all[from] = true
		}
	}
	return s.readOnlyResult(true), all
}

// readOnlyResult is ReadOnlyBest's Result, with its From set if withFrom (s.mu held).
func (s *ReplySet) readOnlyResult(withFrom bool) Result {
	i := s.roLeader()
	if i < 0 {
		return Result{}
	}
	g := s.roGroups[i]
	best := Result{Replies: g.members, Value: bytes.Clone(g.value)}
	if withFrom {
		best.From = make(map[string]bool, g.members)
	}
	for from, r := range s.readOnly {
		if r.Conf == g.conf && bytes.Equal(r.Result, g.value) {
			if withFrom {
				best.From[from] = true
			}
			best.View, best.Seq = max(best.View, r.View), max(best.Seq, r.Seq)
		}
	}
	return best
}

// ReadOnlyResult is ReadOnlyBest's Result without who replied (From is nil): what a
// reader needs, one map less per read.
func (s *ReplySet) ReadOnlyResult() Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readOnlyResult(false)
}
