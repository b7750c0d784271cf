package pbft

import (
	"bytes"
	"fmt"
	"sort"
)

// viewChangeState holds the view-change timer and the view-change messages received.
type viewChangeState struct {
	base    int // ViewChangeTicks
	timeout int // current timeout: doubles with each view that fails to start
	timer   int // ticks left; 0 when not running
	// received[v][i] is replica i's VIEW-CHANGE for view v (views above the current one,
	// or the one being changed to).
	received map[uint64]map[int]*ViewChange
	mine     *ViewChange // this replica's VIEW-CHANGE for the view being changed to
	accepted *NewView    // the NEW-VIEW that started the current view, resent to laggards
	changes  uint64      // views entered after view 0
	// wanted and fetched serve a replica that needs batches view-change messages named
	// by digest only (a new primary re-proposing them, a backup taking a NEW-VIEW): the
	// digests it asked peers for, with their sequence numbers, and the batches that came
	// back. Both are cleared when a view starts.
	wanted  map[Digest]uint64
	fetched map[Digest][]*Request
	// pendingNV is a NEW-VIEW that named batches this backup lacks by digest only; it is
	// taken again when they come.
	pendingNV *NewView
}

// nullDigest is the digest of the empty batch, the null request.
var nullDigest = BatchDigest(nil)

// batchSize is about what a batch adds to a message.
func batchSize(b []*Request) int {
	n := 0
	for _, r := range b {
		n += len(r.Gateway) + len(r.Client) + len(r.Op) + len(r.Auth) + 16
	}
	return n
}

func newViewChangeState(base int) *viewChangeState {
	return &viewChangeState{base: base, timeout: base, received: make(map[uint64]map[int]*ViewChange)}
}

// waiting reports whether a backup is waiting for requests to execute.
func (r *Replica) waiting() bool { return r.pending.len() > 0 || len(r.inflight) > 0 }

// noteWork starts a backup's timer when it learns of work and the timer is idle.
func (vc *viewChangeState) noteWork(r *Replica) {
	if r.viewActive && !r.IsPrimary() && vc.timer == 0 && r.waiting() {
		vc.timer = vc.timeout
	}
}

// noteProgress restarts the timer after an execution, or stops it when nothing waits;
// progress in a view also resets the timeout to its base.
func (vc *viewChangeState) noteProgress(r *Replica) {
	if !r.viewActive {
		return
	}
	vc.timeout = vc.base
	vc.timer = 0
	vc.noteWork(r)
}

func (vc *viewChangeState) noteStable(uint64) {}

// ViewChanges returns how many views this replica has entered after view 0.
func (r *Replica) ViewChanges() uint64 { return r.vc.changes }

func (r *Replica) tickViewChange() {
	vc := r.vc
	if nv := vc.pendingNV; nv != nil && r.statusTimer == 0 {
		vc.pendingNV = nil
		_ = r.stepNewView(nv.Replica, nv) // asks again for batches still missing
	}
	if !r.viewActive && r.statusTimer == 0 && vc.mine != nil {
		r.broadcast(vc.mine) // a lost VIEW-CHANGE must not stall the change
		if len(vc.wanted) > 0 && r.q.Primary(r.view) == r.id {
			r.tryNewView() // asks again for batches still missing
		}
	}
	if vc.timer == 0 {
		return
	}
	vc.timer--
	if vc.timer > 0 {
		return
	}
	if r.viewActive {
		if r.othersAhead() {
			// f+1 peers in this view executed past us, so at least one correct replica
			// sees the primary work: we are behind, not the primary faulty. Catch up
			// (status retransmission, state transfer) and time again.
			vc.timer = vc.timeout
			return
		}
		r.startViewChange(r.view + 1)
		return
	}
	// The view being changed to did not start in time: try the next, waiting longer.
	vc.timeout *= 2
	r.startViewChange(r.view + 1)
}

// othersAhead reports whether f+1 peers' latest status, in the current view, shows them
// past this replica's last executed number.
func (r *Replica) othersAhead() bool {
	n := 0
	for i, e := range r.peerExec {
		if i != r.id && e > r.lastExec {
			n++
		}
	}
	return n >= r.q.Weak()
}

// startViewChange stops accepting normal-case messages of the current view and sends
// VIEW-CHANGE for view v.
func (r *Replica) startViewChange(v uint64) {
	if v <= r.view && !r.viewActive || v < r.view {
		return
	}
	r.view, r.viewActive = v, false
	r.flags.ViewChanged = true
	r.vc.timer = 0
	m := &ViewChange{NewView: v, Replica: r.id, LowWater: r.lowWater}
	budget := r.cfg.ViewChangeBatchBytes
	seqs := make([]uint64, 0, len(r.checkpoints.own))
	for s := range r.checkpoints.own {
		if s >= r.lowWater {
			seqs = append(seqs, s)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, s := range seqs {
		m.Checkpoints = append(m.Checkpoints, CheckpointClaim{Seq: s, State: r.checkpoints.own[s]})
	}
	for _, s := range r.sortedSeqs() {
		e := r.log[s]
		if !r.inWindow(s) {
			continue
		}
		if e.pset != nil {
			p := *e.pset
			if size := batchSize(p.Batch); size > budget {
				p.Batch = nil // named by digest; a new primary without it fetches it
			} else {
				budget -= size
			}
			m.P = append(m.P, p)
		}
		m.Q = append(m.Q, e.qset...)
	}
	r.vc.mine = m
	r.persist(m)
	r.broadcast(m)
	r.recordViewChange(m)
	r.afterViewChangeVote(v)
}

func (r *Replica) sortedSeqs() []uint64 {
	seqs := make([]uint64, 0, len(r.log))
	for s := range r.log {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs
}

func (r *Replica) recordViewChange(m *ViewChange) {
	byRep := r.vc.received[m.NewView]
	if byRep == nil {
		byRep = make(map[int]*ViewChange)
		r.vc.received[m.NewView] = byRep
	}
	if _, ok := byRep[m.Replica]; !ok {
		byRep[m.Replica] = m
	}
}

// validViewChange checks what a VIEW-CHANGE claims is well formed; its signature was
// checked by the driver before Step. A prepared entry's batch, where it is there, must
// match its digest; past ViewChangeBatchBytes the sender leaves batches out, and inside
// a NEW-VIEW (stripped) every batch is left out.
func (r *Replica) validViewChange(m *ViewChange, stripped bool) error {
	K, L := r.cfg.CheckpointInterval, r.cfg.LogWindow
	if m.Replica < 0 || m.Replica >= r.q.N || m.LowWater%K != 0 || m.NewView == 0 {
		return fmt.Errorf("%w: malformed view-change", ErrRejected)
	}
	for _, c := range m.Checkpoints {
		if c.Seq%K != 0 || c.Seq < m.LowWater {
			return fmt.Errorf("%w: view-change checkpoint %d", ErrRejected, c.Seq)
		}
	}
	seen := make(map[uint64]bool, len(m.P))
	for _, p := range m.P {
		if p.Seq <= m.LowWater || p.Seq > m.LowWater+L || p.View >= m.NewView || seen[p.Seq] {
			return fmt.Errorf("%w: view-change prepared entry %d", ErrRejected, p.Seq)
		}
		seen[p.Seq] = true
		if stripped {
			if len(p.Batch) > 0 {
				return fmt.Errorf("%w: new-view holds a view-change with batches", ErrRejected)
			}
			continue
		}
		if len(p.Batch) == 0 && p.Digest != nullDigest {
			continue // left out, named by its digest
		}
		if BatchDigest(p.Batch) != p.Digest {
			return fmt.Errorf("%w: view-change batch does not match digest at %d", ErrRejected, p.Seq)
		}
		for _, req := range p.Batch {
			if err := validRequest(req); err != nil {
				return err
			}
		}
	}
	for _, q := range m.Q {
		if q.Seq <= m.LowWater || q.Seq > m.LowWater+L || q.View >= m.NewView {
			return fmt.Errorf("%w: view-change pre-prepared entry %d", ErrRejected, q.Seq)
		}
	}
	return nil
}

func (r *Replica) stepViewChange(from int, m *ViewChange) error {
	if m.Replica != from {
		return fmt.Errorf("%w: view-change names replica %d, sent by %d", ErrRejected, m.Replica, from)
	}
	if m.NewView < r.view || (m.NewView == r.view && r.viewActive) {
		if r.viewActive && r.vc.accepted != nil {
			r.send(from, r.vc.accepted) // the sender is behind: show it the current view
		}
		return nil
	}
	if m.NewView > r.view+uint64(4*r.q.N) {
		return fmt.Errorf("%w: view-change for view %d, far ahead of %d", ErrRejected, m.NewView, r.view)
	}
	if err := r.validViewChange(m, false); err != nil {
		return err
	}
	r.recordViewChange(m)
	// Join rule: f+1 replicas asking for views above ours cannot all be faulty.
	above := make(map[int]uint64)
	for v, byRep := range r.vc.received {
		if v > r.view {
			for rep := range byRep {
				if old, ok := above[rep]; !ok || v < old {
					above[rep] = v
				}
			}
		}
	}
	if len(above) >= r.q.Weak() {
		smallest := ^uint64(0)
		for _, v := range above {
			if v < smallest {
				smallest = v
			}
		}
		if smallest > r.view {
			r.startViewChange(smallest)
			return nil
		}
	}
	r.afterViewChangeVote(m.NewView)
	return nil
}

// afterViewChangeVote runs when a view-change for view v was recorded: the primary of v
// tries to start it; every replica starts its new-view timer once 2f+1 asked for v.
func (r *Replica) afterViewChangeVote(v uint64) {
	if r.viewActive || v != r.view {
		return
	}
	if len(r.vc.received[v]) >= r.q.Commit() && r.vc.timer == 0 {
		r.vc.timer = r.vc.timeout
	}
	if r.q.Primary(v) == r.id {
		r.tryNewView()
	}
}

// tryNewView makes the primary of the view being changed to send NEW-VIEW once the
// view-changes it holds decide every sequence number.
func (r *Replica) tryNewView() {
	byRep := r.vc.received[r.view]
	if len(byRep) < r.q.Commit() {
		return
	}
	vcs := make([]*ViewChange, 0, len(byRep))
	for _, m := range byRep {
		vcs = append(vcs, m)
	}
	sort.Slice(vcs, func(i, j int) bool { return vcs[i].Replica < vcs[j].Replica })
	d, ok := decideNewView(r.q, r.cfg.LogWindow, r.view, vcs)
	if !ok {
		return
	}
	if !r.fillBatches(d.prePrepares, vcs) {
		return // asked peers for batches it lacks; tried again when they come
	}
	// The view-changes go without their batches: the pre-prepares carry each batch the
	// new view re-proposes once, instead of once per view-change that prepared it.
	stripped := make([]*ViewChange, len(vcs))
	for i, m := range vcs {
		stripped[i] = StripBatches(m)
	}
	// So do the batches past ViewChangeBatchBytes: backups have most from the old view,
	// and fetch the rest.
	budget := r.cfg.ViewChangeBatchBytes
	pps := make([]*PrePrepare, len(d.prePrepares))
	for i, pp := range d.prePrepares {
		pps[i] = pp
		if size := batchSize(pp.Batch); size > budget {
			c := *pp
			c.Batch = nil
			pps[i] = &c
		} else {
			budget -= size
		}
	}
	nv := &NewView{View: r.view, Replica: r.id, ViewChanges: stripped, PrePrepares: pps}
	r.broadcast(nv)
	r.enterView(nv, d)
}

func (r *Replica) stepNewView(from int, m *NewView) error {
	if m.Replica != r.q.Primary(m.View) {
		return fmt.Errorf("%w: new-view for view %d from non-primary %d", ErrRejected, m.View, m.Replica)
	}
	if m.View < r.view || (m.View == r.view && r.viewActive) {
		return nil
	}
	seen := make(map[int]bool)
	for _, vc := range m.ViewChanges {
		if vc.NewView != m.View || seen[vc.Replica] {
			return fmt.Errorf("%w: new-view holds a foreign or duplicate view-change", ErrRejected)
		}
		seen[vc.Replica] = true
		if err := r.validViewChange(vc, true); err != nil {
			return err
		}
	}
	if len(m.ViewChanges) < r.q.Commit() {
		return fmt.Errorf("%w: new-view with %d view-changes", ErrRejected, len(m.ViewChanges))
	}
	d, ok := decideNewView(r.q, r.cfg.LogWindow, m.View, m.ViewChanges)
	if !ok || !samePrePrepares(d.prePrepares, m.PrePrepares) {
		return fmt.Errorf("%w: new-view pre-prepares do not follow from its view-changes", ErrRejected)
	}
	// The decision fixed each digest; the batches come with the primary's pre-prepares,
	// or, for those it named by digest only, from this replica's log or its peers.
	pps := make([]*PrePrepare, len(m.PrePrepares))
	missing := false
	for i, pp := range m.PrePrepares {
		pps[i] = pp
		if len(pp.Batch) == 0 && pp.Digest != nullDigest {
			if pp.Seq <= r.lowWater {
				continue // enterView skips it: its state is in the stable checkpoint
			}
			if b, ok := r.findBatch(pp.Seq, pp.Digest, nil); ok {
				c := *pp
				c.Batch = b
				pps[i] = &c
			} else {
				missing = true
				r.wantBatch(pp.Seq, pp.Digest, m.ViewChanges, m.Replica)
			}
			continue
		}
		if BatchDigest(pp.Batch) != pp.Digest {
			return fmt.Errorf("%w: new-view batch does not match its digest at %d", ErrRejected, pp.Seq)
		}
		for _, req := range pp.Batch {
			if err := validRequest(req); err != nil {
				return err
			}
		}
	}
	if missing {
		r.vc.pendingNV = m
		return nil
	}
	d.prePrepares = pps
	r.view = m.View
	r.enterView(m, d)
	return nil
}

func samePrePrepares(a, b []*PrePrepare) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].View != b[i].View || a[i].Seq != b[i].Seq || a[i].Digest != b[i].Digest {
			return false
		}
	}
	return true
}

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

// enterView starts view nv.View with the decided checkpoint and pre-prepares.
func (r *Replica) enterView(nv *NewView, d decision) {
	vc := r.vc
	vc.wanted, vc.fetched, vc.pendingNV = nil, nil, nil
	r.persist(nv)
	r.viewActive = true
	r.followView = r.view
	r.flags.ViewChanged = true
	vc.accepted, vc.mine = nv, nil
	vc.changes++
	clear(r.peerExec) // progress reports of the old view say nothing about this one
	for v := range vc.received {
		if v <= r.view {
			delete(vc.received, v)
		}
	}
	h := d.checkpoint.Seq
	if h > r.lowWater {
		if own, ok := r.checkpoints.own[h]; ok && own == d.checkpoint.State {
			r.makeStable(h)
		} else if h > r.lastExec {
			r.transfer = newTransfer(h, d.checkpoint.State, d.vouchers)
			for _, rep := range d.vouchers {
				r.addCheckpointVote(rep, h, d.checkpoint.State)
			}
			r.retryTransfer()
		}
	}
	// Entries the new view does not re-issue are gone; their requests go back to pending.
	inO := make(map[uint64]bool, len(d.prePrepares))
	var maxO uint64
	for _, pp := range d.prePrepares {
		inO[pp.Seq] = true
		maxO = pp.Seq
	}
	for _, s := range r.sortedSeqs() { // sorted: the requests re-queued here keep one order
		e := r.log[s]
		e.dropVotesBelow(r.view)
		if s > h && !inO[s] && !e.executed {
			if e.pp != nil {
				for _, req := range e.pp.Batch {
					k := keyOf(req)
					if _, done := r.clients.lookup(k); !done && !r.pending.has(k) {
						r.pending.push(req)
					}
				}
			}
			delete(r.log, s)
		}
	}
	r.maxSeq = 0
	for s := range r.log {
		if s > r.maxSeq {
			r.maxSeq = s
		}
	}
	r.inflight = make(map[reqKey]uint64)
	isPrimary := r.IsPrimary()
	for _, pp := range d.prePrepares {
		if pp.Seq <= r.lowWater {
			continue
		}
		if r.acceptPrePrepare(pp) != nil {
			continue // executed here with another digest: agree to nothing about it
		}
		if !isPrimary {
			p := &Prepare{View: pp.View, Seq: pp.Seq, Digest: pp.Digest, Replica: r.id}
			r.broadcast(p)
			r.addPrepare(r.entryAt(pp.Seq), p)
		}
	}
	r.nextSeq = h
	if maxO > r.nextSeq {
		r.nextSeq = maxO
	}
	if r.lowWater > r.nextSeq {
		r.nextSeq = r.lowWater
	}
	// Hand what we were waiting on to the new primary, and time it again.
	vc.timer = 0
	if !isPrimary {
		for i, req := range r.pending.all() {
			if i >= r.cfg.BatchMax*4 {
				break
			}
			r.send(r.Primary(), req)
		}
	}
	vc.noteWork(r)
	r.executeReady()
}

// retransmitViewChange helps a peer that is in an older view, or stuck changing view.
func (r *Replica) retransmitViewChange(to int) {
	switch {
	case r.viewActive && r.vc.accepted != nil:
		r.send(to, r.vc.accepted)
	case !r.viewActive && r.vc.mine != nil:
		r.send(to, r.vc.mine)
	}
}
