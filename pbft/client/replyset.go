package client

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"sync"

	"github.com/pbft-nats/pbft/pbft"
)

// ReplySet collects the replies of all replicas to one request.
type ReplySet struct {
	mu sync.Mutex
	// votes are the replies to the ordered request, one per replica (its latest), in
	// voteBuf while they are few: at most n, so a scan beats a map, which cost every
	// request two allocations.
	votes   []roVote
	voteBuf [readOnlyInline]roVote
	ro      roState       // replies to the read-only request (readtally.go)
	changed chan struct{} // closed at the next reply; shared by everyone waiting for it
	// wakeAt is the fewest ordered replies at which changed closes (0: at any reply):
	// the least that every goroutine waiting on it asked for (changedAt).
	wakeAt   int
	watchers int      // guarded by Client.mu
	op       [32]byte // the operation's digest, guarded by Client.mu
	// owner is the client watching (nil in tests): it knows the quorum of the
	// configuration a group of replies came from, and the configuration it follows, the
	// only one whose read-only replies count. Only the conflict answer to op counts; a
	// conflict answer to another operation (a late one, for an earlier request under the
	// same id) is not this request's.
	owner *Client
}

// Watch starts collecting replies to (client, t) with operation op; call Unwatch when
// done. Watchers of the same request (a retransmission) share one set. Replies name no
// operation, so a request with another operation under an id being watched cannot be
// told apart: ok is false and nothing is watched.
func (c *Client) Watch(client string, t uint64, op []byte) (set *ReplySet, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := replyKey{client, t}
	d := sha256.Sum256(op)
	s := c.replies[k]
	if s == nil {
		s = &ReplySet{op: d, owner: c}
		c.replies[k] = s
	} else if s.op != d {
		return nil, false
	}
	s.watchers++
	return s, true
}

// isConflict reports a result a quorum of replicas agree is a conflict answer: the
// request's id was used with another operation.
func isConflict(best Result, quorum int) bool {
	return best.Replies >= quorum && pbft.IsConflict(best.Value)
}

// Unwatch stops one watcher of (client, t).
func (c *Client) Unwatch(client string, t uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := replyKey{client, t}
	if s := c.replies[k]; s != nil {
		s.watchers--
		if s.watchers <= 0 {
			delete(c.replies, k)
		}
	}
}

// add counts r as from's reply, in place of any earlier one: one vote per replica, and
// its latest, since an earlier one may answer another request under the same id (a
// late reply; only conflict answers name their operation).
func (s *ReplySet) add(from string, r *pbft.Reply) {
	if s.owner != nil && pbft.IsConflict(r.Result) && !pbft.IsConflictAnswerTo(r.Result, &s.op) {
		return // refuses another operation under this id, sent before this request
	}
	s.mu.Lock()
	wake := true
	if r.ReadOnly {
		s.tallyReadOnly(from, r)
	} else {
		replaced := s.vote(from, r) // a replica's latest reply is its vote
		// A new vote can complete a group of wakeAt only once there are wakeAt replies; a
		// replaced one may move a vote from one group to another at any count.
		wake = replaced || len(s.votes) >= s.wakeAt
	}
	changed := s.changed
	if wake {
		s.changed = nil
	}
	s.mu.Unlock()
	if wake && changed != nil {
		close(changed)
	}
}

// vote makes r from's vote, replacing an earlier one (reported) (s.mu held).
func (s *ReplySet) vote(from string, r *pbft.Reply) (replaced bool) {
	for i := range s.votes {
		if s.votes[i].from == from {
			s.votes[i].rep = r
			return true
		}
	}
	if s.votes == nil {
		s.votes = s.voteBuf[:0]
	}
	s.votes = append(s.votes, roVote{from, r})
	return false
}

// vouchedView is the highest view that at least k replies matching r (same sequence
// number and result) report, or 0: with k = f+1 a faulty replica cannot make the client
// take a view nobody is in (and send every request to a replica that is not the primary).
func (s *ReplySet) vouchedView(r Result, k int) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var buf [16]uint64
	views := buf[:0]
	for _, v := range s.votes {
		if rep := v.rep; rep.Seq == r.Seq && bytes.Equal(rep.Result, r.Value) {
			views = append(views, rep.View)
		}
	}
	if len(views) < k || k < 1 {
		return 0
	}
	slices.Sort(views)
	return views[len(views)-k]
}

// Changed returns a channel closed when the next reply arrives; each watcher asks anew.
func (s *ReplySet) Changed() <-chan struct{} { return s.changedAt(0) }

// changedAt returns a channel closed at the next reply that leaves at least n ordered
// replies in the set, replaces a replica's earlier one, or is read-only: a watcher that
// needs n matching replies is not woken (a goroutine switch and a vote count) for the
// replies before the n-th, which cannot decide anything.
func (s *ReplySet) changedAt(n int) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
		s.wakeAt = n
	} else {
		s.wakeAt = min(s.wakeAt, n)
	}
	return s.changed
}

// Result is the outcome the replies agree on.
type Result struct {
	Seq     uint64
	View    uint64
	Value   []byte
	Replies int // replies that match Value and Seq
	From    map[string]bool
	// Conf is the configuration whose members sent the matching replies.
	Conf uint64
}

// Best returns the largest group of matching replies (same sequence number and result),
// and the set of replicas that replied at all.
func (s *ReplySet) Best() (Result, map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	best, members := s.largestGroup(true)
	best.Value = bytes.Clone(best.Value)
	if best.Replies > 0 {
		best.From = make(map[string]bool, len(members))
		for _, from := range members {
			best.From[from] = true
		}
	}
	all := make(map[string]bool, len(s.votes))
	for _, v := range s.votes {
		all[v.from] = true
	}
	return best, all
}

// Agreed returns the largest group of matching replies once it has quorum members; the
// client's fast path, which needs neither the members nor who else replied.
func (s *ReplySet) Agreed(quorum int) (Result, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	best, ok := s.agreedLocked(quorum)
	best.Value = bytes.Clone(best.Value) // the reply's buffer stays the reply's
	return best, ok
}

// agreedOrWake is Agreed, and when there is no quorum yet, changedAt(wakeAt) under the
// same lock, so no reply falls between the look and the wait: a waiter's one call per
// wake, where Agreed after changedAt cost a second lock and made a channel even for the
// look that finds the quorum (every request's last).
func (s *ReplySet) agreedOrWake(quorum, wakeAt int) (Result, bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.votes) < wakeAt && s.changed != nil && s.wakeAt <= wakeAt {
		// Too few replies to decide, and a wait that will wake in time is set up.
		return Result{}, false, s.changed
	}
	if best, ok := s.agreedLocked(quorum); ok {
		best.Value = bytes.Clone(best.Value)
		return best, true, nil
	}
	if s.changed == nil {
		s.changed = make(chan struct{})
		s.wakeAt = wakeAt
	} else {
		s.wakeAt = min(s.wakeAt, wakeAt)
	}
	return Result{}, false, s.changed
}

// agreedLocked is Agreed with s.mu held; the value is the reply's.
func (s *ReplySet) agreedLocked(quorum int) (Result, bool) {
	best, _ := s.largestGroup(false)
	if s.owner != nil && best.Replies > 0 {
		// Counted in the quorum of the configuration the replies came from.
		if q, ok := s.owner.quorumOf(best.Conf); ok {
			quorum = q
		}
	}
	return best, best.Replies >= quorum
}

// largestGroup finds the largest group of replies with the same sequence number and
// result (ties go to the lower sequence number) and its members. There are at most n
// replies, so comparing pairs beats building maps; the groups are counted on the stack
// and only the best one's members are listed, if withMembers. The value is the reply's
// buffer: a caller returning it clones it.
func (s *ReplySet) largestGroup(withMembers bool) (Result, []string) {
	var fbuf [16]string
	var rbuf [16]*pbft.Reply
	froms, reps := fbuf[:0], rbuf[:0]
	for _, v := range s.votes {
		froms, reps = append(froms, v.from), append(reps, v.rep)
	}
	var best Result
	bestAt := -1
	for i, r := range reps {
		size, seen := 1, false
		for j, o := range reps {
			if j == i || o.Seq != r.Seq || o.Conf != r.Conf || !bytes.Equal(o.Result, r.Result) {
				continue
			}
			if j < i {
				seen = true // counted with its first member already
				break
			}
			size++
		}
		if !seen && (size > best.Replies || (size == best.Replies && r.Seq < best.Seq)) {
			best = Result{Seq: r.Seq, Value: r.Result, Replies: size, Conf: r.Conf}
			bestAt = i
		}
	}
	if bestAt < 0 {
		return best, nil
	}
	r := reps[bestAt]
	var members []string
	if withMembers {
		members = make([]string, 0, best.Replies)
	}
	for j, o := range reps {
		if j >= bestAt && o.Seq == r.Seq && o.Conf == r.Conf && bytes.Equal(o.Result, r.Result) {
			if withMembers {
				members = append(members, froms[j])
			}
			best.View = max(best.View, o.View)
		}
	}
	return best, members
}
