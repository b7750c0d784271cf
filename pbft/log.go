package pbft

// votes are the prepares or commits of one view for one sequence number: at most one per
// replica (the first it sent), with the digest it named.
type votes struct {
	digest []Digest
	has    []bool
}

func newVotes(n int) votes { return votes{digest: make([]Digest, n), has: make([]bool, n)} }

// add records replica's vote; a second, different vote from the same replica is ignored.
func (v *votes) add(replica int, d Digest) bool {
	if v.has[replica] {
		return false
	}
	v.has[replica], v.digest[replica] = true, d
	return true
}

// matching counts the votes for d.
func (v *votes) matching(d Digest) int {
	n := 0
	for i, ok := range v.has {
		if ok && v.digest[i] == d {
			n++
		}
	}
	return n
}

// from lists the replicas that voted for d, in index order.
func (v *votes) from(d Digest) []int {
	var out []int
	for i, ok := range v.has {
		if ok && v.digest[i] == d {
			out = append(out, i)
		}
	}
	return out
}

// viewVotes are the prepares and commits received for one (view, seq).
type viewVotes struct {
	view     uint64
	prepares votes
	commits  votes
}

// entry is everything a replica logs for one sequence number.
type entry struct {
	seq uint64
	// pp is the pre-prepare accepted (or, at the primary, sent) in the latest view that had
	// one; prepared and committed refer to pp.View.
	pp        *PrePrepare
	prepared  bool
	committed bool
	executed  bool
	// caughtUp marks a pp made up from a quorum of peers' commits (catchup.go), which
	// this replica never accepted: it is not a durable record.
	caughtUp bool
	// byView holds votes, including ones that arrived before their pre-prepare.
	byView []*viewVotes

	// The P and Q sets of view change (Castro & Liskov TOCS §4.5): the highest view this
	// entry prepared in, with its batch, and per digest the highest view it pre-prepared in.
	pset *Prepared
	qset []PrePrepared
}

func (e *entry) votesFor(view uint64, n int) *viewVotes {
	for _, vv := range e.byView {
		if vv.view == view {
			return vv
		}
	}
	vv := &viewVotes{view: view, prepares: newVotes(n), commits: newVotes(n)}
	e.byView = append(e.byView, vv)
	return vv
}

// current returns the votes of the view of the accepted pre-prepare, or nil.
func (e *entry) current() *viewVotes {
	if e.pp == nil {
		return nil
	}
	for _, vv := range e.byView {
		if vv.view == e.pp.View {
			return vv
		}
	}
	return nil
}

// dropVotesBelow forgets votes of views older than view: they can no longer matter once
// the replica has moved on, and a faulty peer could otherwise grow the list.
func (e *entry) dropVotesBelow(view uint64) {
	kept := e.byView[:0]
	for _, vv := range e.byView {
		if vv.view >= view || (e.pp != nil && vv.view == e.pp.View) {
			kept = append(kept, vv)
		}
	}
	e.byView = kept
}

// notePrePrepared records (view, digest) in the Q set.
func (e *entry) notePrePrepared(view uint64, d Digest) {
	for i := range e.qset {
		if e.qset[i].Digest == d {
			if view > e.qset[i].View {
				e.qset[i].View = view
			}
			return
		}
	}
	e.qset = append(e.qset, PrePrepared{Seq: e.seq, View: view, Digest: d})
}
