package pbft

import (
	"bytes"
	"sort"
)

// The NEW-VIEW decision of Castro & Liskov (TOCS 2002 §4.5). It is a pure function of
// the quorum, the log window, the new view and the view-change messages: the new primary
// runs it to build NEW-VIEW and every backup runs it again to check the primary's choice.
// "A quorum" below is Quorum.Commit() (2f+1 when n = 3f+1) and "f+1" is Quorum.Weak().

// decision is the outcome of the new-view decision procedure.
type decision struct {
	checkpoint  CheckpointClaim
	vouchers    []int // replicas whose view-change claims the checkpoint
	prePrepares []*PrePrepare
}

// decideNewView picks the latest checkpoint that a quorum of view-changes allow and f+1
// vouch for, then for each later number up to the highest prepared one either the batch
// that may have committed in an earlier view or a null request. It reports false when
// the view-changes do not decide yet (more must come).
func decideNewView(q Quorum, window, view uint64, vcs []*ViewChange) (decision, bool) {
	var d decision
	var found bool
	d.checkpoint, d.vouchers, found = chooseCheckpoint(q, vcs)
	if !found {
		return d, false
	}
	h := d.checkpoint.Seq
	last := lastPrepared(vcs, h+window)
	for n := h + 1; n <= last; n++ {
		pp, ok := decideSeq(q, view, n, vcs)
		if !ok {
			return d, false
		}
		d.prePrepares = append(d.prePrepares, pp)
	}
	return d, true
}

// chooseCheckpoint returns the highest checkpoint claim that a quorum of view-changes
// allow (their low-water mark is at or below it) and f+1 vouch for (they claim the same
// state at that number), with the replicas that vouch for it. Of equal numbers, the first
// claim in vcs order wins.
func chooseCheckpoint(q Quorum, vcs []*ViewChange) (CheckpointClaim, []int, bool) {
	var best CheckpointClaim
	var bestVouchers []int
	found := false
	for _, m := range vcs {
		for _, c := range m.Checkpoints {
			if found && c.Seq <= best.Seq {
				continue
			}
			low, vouch := 0, []int(nil)
			for _, o := range vcs {
				if o.LowWater <= c.Seq {
					low++
				}
				for _, oc := range o.Checkpoints {
					if oc == c {
						vouch = append(vouch, o.Replica)
						break
					}
				}
			}
			if low >= q.Commit() && len(vouch) >= q.Weak() {
				best, bestVouchers, found = c, vouch, true
			}
		}
	}
	return best, bestVouchers, found
}

// lastPrepared is the highest number at or below limit that some view-change's P set
// holds: past it the new view re-issues nothing.
func lastPrepared(vcs []*ViewChange, limit uint64) uint64 {
	var last uint64
	for _, m := range vcs {
		for _, p := range m.P {
			if p.Seq > last && p.Seq <= limit {
				last = p.Seq
			}
		}
	}
	return last
}

// findP returns m's P entry for n, or nil.
func findP(m *ViewChange, n uint64) *Prepared {
	for i := range m.P {
		if m.P[i].Seq == n {
			return &m.P[i]
		}
	}
	return nil
}

// decideSeq chooses sequence number n's batch in the new view. Condition A: a batch
// prepared in view v is re-issued when a quorum of view-changes (A1) do not contradict it
// (nothing prepared at n, or prepared in an older view, or the same batch in v) and f+1
// (A2) pre-prepared it in v or later. Condition B: otherwise, when a quorum prepared
// nothing at n, a null request. Only view-changes whose low-water mark is below n count
// for A1 and B. It reports false when neither holds yet.
func decideSeq(q Quorum, view, n uint64, vcs []*ViewChange) (*PrePrepare, bool) {
	// Candidates in a fixed order, the highest view first, so every replica picks the same.
	var cands []*Prepared
	for _, m := range vcs {
		if p := findP(m, n); p != nil {
			cands = append(cands, p)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].View != cands[j].View {
			return cands[i].View > cands[j].View
		}
		return bytes.Compare(cands[i].Digest[:], cands[j].Digest[:]) < 0
	})
	for _, c := range cands {
		a1, a2 := 0, 0
		for _, m := range vcs {
			if m.LowWater < n {
				p := findP(m, n)
				if p == nil || p.View < c.View || (p.View == c.View && p.Digest == c.Digest) {
					a1++
				}
			}
			for _, qe := range m.Q {
				if qe.Seq == n && qe.Digest == c.Digest && qe.View >= c.View {
					a2++
					break
				}
			}
		}
		if a1 >= q.Commit() && a2 >= q.Weak() {
			return &PrePrepare{View: view, Seq: n, Digest: c.Digest, Batch: c.Batch}, true
		}
	}
	empty := 0
	for _, m := range vcs {
		if m.LowWater < n && findP(m, n) == nil {
			empty++
		}
	}
	if empty >= q.Commit() {
		return &PrePrepare{View: view, Seq: n, Digest: BatchDigest(nil)}, true
	}
	return nil, false
}
