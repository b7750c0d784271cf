package client

import (
	"bytes"
	"sync"

	"github.com/pbft-nats/pbft/pbft"
)

// The read-only replies of a ReplySet are grouped by result as they arrive, so that a
// reader waiting for q matching ones looks at a count instead of regrouping every reply
// at every arrival. The rule is pbft.AcceptReplies': each replica's latest reply counts
// once, replies match on the result alone (each replica reads at its own last executed
// number), and a tie goes to the smaller result. Only replies of the configuration in
// force count: a read never mixes members of two configurations.
//
// A read's replies are few (one per replica), so they are kept in small slices whose
// first elements live in the ReplySet itself: a read allocates no map, and a reply costs
// one comparison of its result per group (one group when the replicas agree).

// roVote is one replica's latest read-only reply.
type roVote struct {
	from string
	rep  *pbft.Reply
}

// roGroup counts the read-only replies of one configuration that agree on one result.
type roGroup struct {
	conf    uint64
	value   []byte
	members int
}

// readOnlyInline is how many votes and waiters a ReplySet holds without allocating:
// the replicas of a cluster of four.
const readOnlyInline = 4

// roState is a ReplySet's read-only part (guarded by the set's mu).
type roState struct {
	votes   []roVote
	groups  []roGroup
	waiters []roWaiter
	// Backing arrays of the slices above while they are small.
	voteBuf   [readOnlyInline]roVote
	groupBuf  [2]roGroup
	waiterBuf [1]roWaiter
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
	for _, v := range s.ro.votes {
		if s.inForce(v.rep.Conf) {
			n++
		}
	}
	return n
}

// tallyReadOnly makes r from's read-only vote, in place of any earlier one (s.mu held).
func (s *ReplySet) tallyReadOnly(from string, r *pbft.Reply) {
	ro := &s.ro
	if ro.votes == nil {
		ro.votes, ro.groups, ro.waiters = ro.voteBuf[:0], ro.groupBuf[:0], ro.waiterBuf[:0]
	}
	vote := -1
	for i := range ro.votes {
		if ro.votes[i].from == from {
			vote = i
			break
		}
	}
	if vote >= 0 {
		prev := ro.votes[vote].rep
		if i := s.roGroupOf(prev.Conf, prev.Result); i >= 0 {
			if ro.groups[i].members--; ro.groups[i].members == 0 {
				// Drop it: a faulty replica changing its reply must not grow the list.
				last := len(ro.groups) - 1
				ro.groups[i] = ro.groups[last]
				ro.groups[last] = roGroup{}
				ro.groups = ro.groups[:last]
			}
		}
		ro.votes[vote].rep = r
	} else {
		ro.votes = append(ro.votes, roVote{from: from, rep: r})
	}
	if i := s.roGroupOf(r.Conf, r.Result); i >= 0 {
		ro.groups[i].members++
	} else {
		ro.groups = append(ro.groups, roGroup{conf: r.Conf, value: r.Result, members: 1})
	}
	s.wakeReadOnly()
}

// roWaiter is a reader waiting for a group of need matching read-only replies or replies
// from all replicas. Its channel is closed when the condition holds, or, if signal, sent
// one value (a channel the reader reuses: awaitReadOnly).
type roWaiter struct {
	need, all int
	ch        chan struct{}
	signal    bool
}

// ReadOnlyDone returns a channel closed once the largest group of matching read-only
// replies has need members or all replicas sent one: a reader wakes once, not at every
// reply.
func (s *ReplySet) ReadOnlyDone(need, all int) <-chan struct{} {
	ch := make(chan struct{})
	s.addWaiter(roWaiter{need: need, all: all, ch: ch})
	return ch
}

func (s *ReplySet) addWaiter(w roWaiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.roDone(w) {
		w.wake()
		return
	}
	if s.ro.waiters == nil {
		s.ro.votes, s.ro.groups, s.ro.waiters = s.ro.voteBuf[:0], s.ro.groupBuf[:0], s.ro.waiterBuf[:0]
	}
	s.ro.waiters = append(s.ro.waiters, w)
}

// removeWaiter forgets the waiter on ch, woken or not: nothing sends on ch afterwards.
func (s *ReplySet) removeWaiter(ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.ro.waiters[:0]
	for _, w := range s.ro.waiters {
		if w.ch != ch {
			kept = append(kept, w)
		}
	}
	clear(s.ro.waiters[len(kept):])
	s.ro.waiters = kept
}

func (w roWaiter) wake() {
	if !w.signal {
		close(w.ch)
		return
	}
	select {
	case w.ch <- struct{}{}:
	default: // woken already
	}
}

// wakeChans are the reusable channels of awaitReadOnly: one per read would be an
// allocation per read.
var wakeChans = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

func (s *ReplySet) roDone(w roWaiter) bool {
	i := s.roLeader()
	return s.roReplied() >= w.all || i >= 0 && s.ro.groups[i].members >= w.need
}

// wakeReadOnly wakes the waiters whose condition now holds and forgets them (s.mu held).
func (s *ReplySet) wakeReadOnly() {
	kept := s.ro.waiters[:0]
	for _, w := range s.ro.waiters {
		if s.roDone(w) {
			w.wake()
		} else {
			kept = append(kept, w)
		}
	}
	clear(s.ro.waiters[len(kept):])
	s.ro.waiters = kept
}

func (s *ReplySet) roGroupOf(conf uint64, v []byte) int {
	for i := range s.ro.groups {
		if s.ro.groups[i].conf == conf && bytes.Equal(s.ro.groups[i].value, v) {
			return i
		}
	}
	return -1
}

// roLeader is the largest group of the configuration in force (ties: the smaller
// result), or -1 (s.mu held).
func (s *ReplySet) roLeader() int {
	best := -1
	for i, g := range s.ro.groups {
		if !s.inForce(g.conf) {
			continue
		}
		if best < 0 || g.members > s.ro.groups[best].members ||
			g.members == s.ro.groups[best].members && bytes.Compare(g.value, s.ro.groups[best].value) < 0 {
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
		best = s.ro.groups[i].members
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
	all := make(map[string]bool, len(s.ro.votes))
	for _, v := range s.ro.votes {
		if s.inForce(v.rep.Conf) {
			all[v.from] = true
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
	g := s.ro.groups[i]
	best := Result{Replies: g.members, Value: bytes.Clone(g.value)}
	if withFrom {
		best.From = make(map[string]bool, g.members)
	}
	for _, v := range s.ro.votes {
		if r := v.rep; r.Conf == g.conf && bytes.Equal(r.Result, g.value) {
			if withFrom {
				best.From[v.from] = true
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
