package node

import (
	"encoding/hex"
	"time"

	"github.com/pbft-nats/pbft/pbft"
)

// waiter is a query whose answer waits for a condition.
type waiter struct {
	from     string
	q        *Query
	key      submitKey
	op       []byte // OpSubmit: the request's operation
	deadline time.Time
	done     bool
}

func (n *Node) handleQuery(from string, q *Query) {
	w := &waiter{from: from, q: q, deadline: time.Now().Add(time.Duration(q.WaitMillis) * time.Millisecond)}
	switch q.Op {
	case OpSubmit:
		msg, err := pbft.Unmarshal(q.Request)
		req, ok := msg.(*pbft.Request)
		if err != nil || !ok || req.Gateway != from {
			n.answer(w, &Answer{Error: "bad request"})
			return
		}
		if err := n.verifyInner(req); err != nil {
			n.reject(rejectReason(err), from, "request", err)
			n.answer(w, &Answer{Error: "request not authenticated"})
			return
		}
		if req.ReadOnly {
			n.submitReadOnly(w, req)
			return
		}
		w.key, w.op = submitKey{req.Client, req.Timestamp}, req.Op
		if n.r.Stale(req.Client, req.Timestamp) {
			n.answer(w, &Answer{Error: ErrStale})
			return
		}
		if n.Fault() != FaultCrash {
			n.count(n.stats.In, "request")
			n.metrics.noteStepped(pbft.FromClient, req, time.Now())
			if err := n.r.Step(pbft.FromClient, req); err != nil {
				n.count(n.stats.Rejected, "protocol")
			}
			n.traceRecv(from, req)
		}
		n.submits[w.key] = append(n.submits[w.key], w)
	case OpStatus, OpInfo:
		// Answered by checkWaiters, after the flush that ends this drain of the inbox: the
		// messages drained with the query may have executed a request whose reply that
		// flush sends, and a gateway counts on the reply coming before the answer.
		n.waiters = append(n.waiters, w)
	default:
		n.answer(w, &Answer{Error: "unknown op"})
	}
}

// tryAnswer answers w if its condition holds (or force is set); it reports whether it did.
func (n *Node) tryAnswer(w *waiter, force bool) bool {
	r := n.r
	q := w.q
	switch q.Op {
	case OpSubmit:
		seq, view, ordered, _ := r.Lookup(w.key.client, w.key.t)
		if !ordered && !force {
			return false
		}
		conflict := ordered && r.Conflicting(w.key.client, w.key.t, w.op)
		n.answer(w, &Answer{Seq: seq, View: view, Ordered: ordered, TimedOut: !ordered, Conflict: conflict})
		return true
	case OpStatus:
		met := n.waitMet(q)
		if !met && !force {
			return false
		}
		st := r.Status(q.Seq)
		n.answer(w, &Answer{TimedOut: !met, Phase: st.Phase.String(), Prepares: len(st.PreparesFrom),
			Commits: len(st.CommitsFrom), Executed: st.Executed, View: r.View()})
		return true
	case OpInfo:
		met := n.waitMet(q)
		if !met && !force {
			return false
		}
		a := n.info(!met)
		if q.Digest {
			d := n.r.StateDigest()
			a.StateDigest = hex.EncodeToString(d[:])
		}
		n.answer(w, a)
		return true
	}
	return true
}

func (n *Node) info(timedOut bool) *Answer {
	r := n.r
	return &Answer{TimedOut: timedOut, View: r.View(), Primary: n.ids[r.Primary()], ViewActive: r.ViewActive(),
		LastExecuted: r.LastExecuted(), StableCheckpoint: r.StableCheckpoint(), ViewChanges: r.ViewChanges(),
		Fault: string(n.Fault()), Configuration: r.Configuration(), Members: r.Members(), NotMember: !r.IsMember()}
}

// waitMet evaluates a query's wait condition.
func (n *Node) waitMet(q *Query) bool {
	w := q.Wait
	if w == nil {
		return true
	}
	if n.r.LastExecuted() < w.MinExecuted {
		return false
	}
	if w.MinConfiguration > 0 && (n.r.Configuration() < w.MinConfiguration || !n.r.IsMember()) {
		return false
	}
	if q.Op != OpStatus || q.Seq > w.MinExecuted || len(w.CommitsFrom) == 0 {
		return true
	}
	st := n.r.Status(q.Seq)
	have := make(map[int]bool, len(st.CommitsFrom))
	for _, i := range st.CommitsFrom {
		have[i] = true
	}
	for _, id := range w.CommitsFrom {
		if i, ok := n.index[id]; ok && !have[i] {
			return false
		}
	}
	return true
}

func (n *Node) answer(w *waiter, a *Answer) {
	w.done = true
	a.ID, a.Replica = w.q.ID, n.cfg.ID
	data := EncodeAnswer(a)
	n.afterDurable(func() { // durable.go
		if err := n.tr.Send(w.from, KindAnswer, n.keys.Seal(w.from, KindAnswer, data)); err != nil {
			n.log.Debug("answer failed", "to", w.from, "err", err)
		}
	})
}

// checkWaiters answers every waiting query whose condition now holds.
func (n *Node) checkWaiters() {
	if len(n.waiters) > 0 {
		kept := n.waiters[:0]
		for _, w := range n.waiters {
			if !n.tryAnswer(w, false) {
				kept = append(kept, w)
			}
		}
		clear(n.waiters[len(kept):])
		n.waiters = kept
	}
	for k, ws := range n.submits {
		if _, _, ordered, _ := n.r.Lookup(k.client, k.t); !ordered {
			continue
		}
		for _, w := range ws {
			n.tryAnswer(w, true)
		}
		delete(n.submits, k)
	}
}

// expireWaiters answers, with what the replica has, every query whose wait ran out.
func (n *Node) expireWaiters(now time.Time) {
	kept := n.waiters[:0]
	for _, w := range n.waiters {
		if now.After(w.deadline) {
			n.tryAnswer(w, true)
		} else {
			kept = append(kept, w)
		}
	}
	clear(n.waiters[len(kept):])
	n.waiters = kept
	for k, ws := range n.submits {
		live := ws[:0]
		for _, w := range ws {
			if now.After(w.deadline) {
				n.tryAnswer(w, true)
			} else {
				live = append(live, w)
			}
		}
		if len(live) == 0 {
			delete(n.submits, k)
		} else {
			n.submits[k] = live
		}
	}
}
