package pbft

import "fmt"

// fillBatches puts in the batch of each decided pre-prepare that the view-changes named
// by digest only, from this replica's log, another view-change, or a peer's answer. For
// each one missing it asks the replicas whose view-changes claim it (prepared or
// pre-prepared: one of them is correct and has it) and reports false.
func (r *Replica) fillBatches(pps []*PrePrepare, vcs []*ViewChange) bool {
	complete := true
	for i, pp := range pps {
		if len(pp.Batch) > 0 || pp.Digest == nullDigest || pp.Seq <= r.lowWater {
			continue // below its stable checkpoint a replica neither needs nor keeps batches
		}
		if b, ok := r.findBatch(pp.Seq, pp.Digest, vcs); ok {
			c := *pp
			c.Batch = b
			pps[i] = &c
			continue
		}
		complete = false
		r.wantBatch(pp.Seq, pp.Digest, vcs, -1)
	}
	return complete
}

// wantBatch asks for the batch with digest at seq: of also (unless -1) and of every
// replica whose view-change in vcs claims it.
func (r *Replica) wantBatch(seq uint64, digest Digest, vcs []*ViewChange, also int) {
	if r.vc.wanted == nil {
		r.vc.wanted = make(map[Digest]uint64)
	}
	r.vc.wanted[digest] = seq
	ask := func(to int) {
		if to != r.id {
			r.send(to, &FetchBatch{Seq: seq, Digest: digest, Replica: r.id})
		}
	}
	if also >= 0 {
		ask(also)
	}
	for _, m := range vcs {
		if m.Replica != also && claims(m, seq, digest) {
			ask(m.Replica)
		}
	}
}

// claims reports whether view-change m says its sender prepared or pre-prepared digest
// at seq.
func claims(m *ViewChange, seq uint64, digest Digest) bool {
	if p := findP(m, seq); p != nil && p.Digest == digest {
		return true
	}
	for _, q := range m.Q {
		if q.Seq == seq && q.Digest == digest {
			return true
		}
	}
	return false
}

// findBatch looks for the batch with digest at seq in this replica's log, in vcs, and
// among the batches peers sent it.
func (r *Replica) findBatch(seq uint64, digest Digest, vcs []*ViewChange) ([]*Request, bool) {
	if e := r.log[seq]; e != nil {
		if e.pp != nil && e.pp.Digest == digest && len(e.pp.Batch) > 0 {
			return e.pp.Batch, true
		}
		if e.pset != nil && e.pset.Digest == digest && len(e.pset.Batch) > 0 {
			return e.pset.Batch, true
		}
	}
	for _, m := range vcs {
		if p := findP(m, seq); p != nil && p.Digest == digest && len(p.Batch) > 0 {
			return p.Batch, true
		}
	}
	if b, ok := r.vc.fetched[digest]; ok {
		return b, true
	}
	return nil, false
}

// stepFetchBatch serves a new primary the batch it lacks, if this replica has it.
func (r *Replica) stepFetchBatch(from int, m *FetchBatch) error {
	if m.Replica != from {
		return fmt.Errorf("%w: fetch-batch names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	if b, ok := r.findBatch(m.Seq, m.Digest, nil); ok {
		r.send(from, &BatchMsg{Seq: m.Seq, Digest: m.Digest, Batch: b, Replica: r.id})
	}
	return nil
}

// stepBatch takes a batch this replica asked for, if it matches the digest.
func (r *Replica) stepBatch(from int, m *BatchMsg) error {
	if m.Replica != from {
		return fmt.Errorf("%w: batch names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	if _, ok := r.vc.wanted[m.Digest]; !ok {
		return nil // not asked for, or already here
	}
	if len(m.Batch) == 0 || BatchDigest(m.Batch) != m.Digest {
		return fmt.Errorf("%w: batch from replica %d does not match its digest", ErrRejected, from)
	}
	for _, req := range m.Batch {
		if err := validRequest(req); err != nil {
			return err
		}
	}
	delete(r.vc.wanted, m.Digest)
	if r.vc.fetched == nil {
		r.vc.fetched = make(map[Digest][]*Request)
	}
	r.vc.fetched[m.Digest] = m.Batch
	if nv := r.vc.pendingNV; nv != nil && len(r.vc.wanted) == 0 {
		r.vc.pendingNV = nil
		return r.stepNewView(nv.Replica, nv)
	}
	if !r.viewActive && r.q.Primary(r.view) == r.id {
		r.tryNewView()
	}
	return nil
}
