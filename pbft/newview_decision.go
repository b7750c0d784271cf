package pbft

import (
	"bytes"
	"sort"
)

// decision is the outcome of the new-view decision procedure.
type decision struct {
	checkpoint  CheckpointClaim
	vouchers    []int // replicas whose view-change claims the checkpoint
	prePrepares []*PrePrepare
}

// decideNewView is Castro & Liskov's decision procedure (TOCS §4.5.1): pick the latest
// checkpoint that 2f+1 view-changes allow and f+1 vouch for, then for each later number
// either the batch that may have committed in an earlier view or a null request. It is a
// pure function of the view-changes, so backups re-run it to check the primary.
func decideNewView(q Quorum, window, view uint64, vcs []*ViewChange) (decision, bool) {
	var d decision
	found := false
	for _, m := range vcs {
		for _, c := range m.Checkpoints {
			if found && c.Seq <= d.checkpoint.Seq {
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
				d.checkpoint, d.vouchers, found = c, vouch, true
			}
		}
	}
	if !found {
		return d, false
	}
	h := d.checkpoint.Seq
	var maxSeq uint64
	for _, m := range vcs {
		for _, p := range m.P {
			if p.Seq > maxSeq && p.Seq <= h+window {
				maxSeq = p.Seq
			}
		}
	}
	for n := h + 1; n <= maxSeq; n++ {
		pp, ok := decideSeq(q, view, n, vcs)
		if !ok {
			return d, false
		}
		d.prePrepares = append(d.prePrepares, pp)
	}
	return d, true
}

func findP(m *ViewChange, n uint64) *Prepared {
	for i := range m.P {
		if m.P[i].Seq == n {
			return &m.P[i]
		}
	}
	return nil
}

// decideSeq chooses sequence number n's batch in the new view (conditions A and B).
func decideSeq(q Quorum, view, n uint64, vcs []*ViewChange) (*PrePrepare, bool) {
	// Candidates in a fixed order so every replica picks the same one.
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
