package pbft

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
)

// The NEW-VIEW decision, case by case as Castro & Liskov state it (TOCS 2002 §4.5, and
// Castro's thesis): the checkpoint is the highest that a quorum of view-changes
// allow (low-water mark at or below it) and f+1 vouch for; then, for each number up to
// the highest prepared one, condition A (A1: a quorum does not contradict a prepared
// certificate; A2: f+1 pre-prepared it in its view or later) re-issues the batch, else
// condition B (a quorum prepared nothing there) a null request, else the decision waits.
// The quorum is floor((n+f)/2)+1: 3 of 4, 4 of 5, 5 of 7; f+1 is 2, 2, 3.

// decisionView is the view being changed to in every case; certificates are from views 0
// and 1.
const decisionView = 2

// testBatch is a one-request batch; its operation names it, so digests tell cases apart.
func testBatch(name string) []*Request {
	return []*Request{{Gateway: "gw", Client: "client", Timestamp: 1, Op: []byte("set k=" + name)}}
}

// stateAt is the state digest correct replicas agree on at checkpoint seq; forgedStateAt
// is one only a faulty replica claims.
func stateAt(seq uint64) Digest { return sha256.Sum256([]byte(fmt.Sprint("state ", seq))) }

func forgedStateAt(seq uint64) Digest { return sha256.Sum256([]byte(fmt.Sprint("forged ", seq))) }

type vcPart func(*ViewChange)

// prepared puts a prepared certificate for batch name at seq in view into P, and its
// pre-prepare into Q, as a replica that prepared it reports both.
func prepared(seq, view uint64, name string) vcPart {
	return func(m *ViewChange) {
		b := testBatch(name)
		m.P = append(m.P, Prepared{Seq: seq, View: view, Digest: BatchDigest(b), Batch: b})
		m.Q = append(m.Q, PrePrepared{Seq: seq, View: view, Digest: BatchDigest(b)})
	}
}

// prePrepared puts only a pre-prepare into Q: the replica accepted it, it did not prepare.
func prePrepared(seq, view uint64, name string) vcPart {
	return func(m *ViewChange) {
		m.Q = append(m.Q, PrePrepared{Seq: seq, View: view, Digest: BatchDigest(testBatch(name))})
	}
}

// checkpointAt adds a claim of the correct state at seq; forgedCheckpointAt a false one.
func checkpointAt(seq uint64) vcPart {
	return func(m *ViewChange) { m.Checkpoints = append(m.Checkpoints, CheckpointClaim{seq, stateAt(seq)}) }
}

func forgedCheckpointAt(seq uint64) vcPart {
	return func(m *ViewChange) {
		m.Checkpoints = append(m.Checkpoints, CheckpointClaim{seq, forgedStateAt(seq)})
	}
}

// viewChange is replica rep's VIEW-CHANGE with stable checkpoint low (which it claims).
func viewChange(rep int, low uint64, parts ...vcPart) *ViewChange {
	m := &ViewChange{NewView: decisionView, Replica: rep, LowWater: low,
		Checkpoints: []CheckpointClaim{{low, stateAt(low)}}}
	for _, p := range parts {
		p(m)
	}
	return m
}

// viewChanges is one view-change with stable checkpoint low and nothing prepared from
// each of reps.
func viewChanges(low uint64, reps ...int) []*ViewChange {
	var vcs []*ViewChange
	for _, rep := range reps {
		vcs = append(vcs, viewChange(rep, low))
	}
	return vcs
}

// null stands for a null request in decisionCase.reissued.
const null = "null"

type decisionCase struct {
	name   string // the paper's case it represents
	n      int
	window uint64 // the log window L; 16 when 0
	vcs    []*ViewChange
	// What the decision must be: undecided, or the checkpoint, the replicas vouching for
	// it and the batch re-issued at each number after it (null for a null request).
	undecided  bool
	checkpoint uint64
	vouchers   []int
	reissued   []string
}

var decisionCases = []decisionCase{
	// Empty P sets.
	{name: "B/empty P sets: nothing to re-issue (n=4)", n: 4,
		vcs: viewChanges(0, 0, 1, 2), checkpoint: 0, vouchers: []int{0, 1, 2}},
	{name: "B/empty P sets after a stable checkpoint: nothing to re-issue (n=7)", n: 7,
		vcs: viewChanges(8, 0, 2, 3, 4, 6), checkpoint: 8, vouchers: []int{0, 2, 3, 4, 6}},
	{name: "B/a number below a prepared one that nobody prepared gets a null request", n: 4,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(3, 1, "c")), viewChange(1, 0, prepared(3, 1, "c")), viewChange(2, 0)},
		checkpoint: 0, vouchers: []int{0, 1, 2}, reissued: []string{null, null, "c"}},
	{name: "B/null requests and a re-issued batch (n=7)", n: 7,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(3, 1, "c")), viewChange(1, 0, prepared(3, 1, "c")),
			viewChange(2, 0, prepared(3, 1, "c")), viewChange(3, 0), viewChange(5, 0)},
		checkpoint: 0, vouchers: []int{0, 1, 2, 3, 5}, reissued: []string{null, null, "c"}},

	// A prepared certificate from an older view.
	{name: "A/prepared in the view that failed: re-issued with its batch in the new view", n: 4,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 1, "a")), viewChange(1, 0, prepared(1, 1, "a")), viewChange(2, 0)},
		checkpoint: 0, vouchers: []int{0, 1, 2}, reissued: []string{"a"}},
	{name: "A/certificates from two views: the one with the highest view wins", n: 4,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "old")), viewChange(1, 0, prepared(1, 1, "new")),
			viewChange(2, 0, prepared(1, 1, "new")), viewChange(3, 0, prepared(1, 0, "old"))},
		checkpoint: 0, vouchers: []int{0, 1, 2, 3}, reissued: []string{"new"}},
	{name: "A/both certificates satisfy A: the one with the highest view wins (n=7)", n: 7,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "old")), viewChange(1, 0, prepared(1, 0, "old")),
			viewChange(2, 0, prepared(1, 0, "old")), viewChange(3, 0, prepared(1, 1, "new")),
			viewChange(4, 0, prepared(1, 1, "new")), viewChange(5, 0, prePrepared(1, 1, "new")), viewChange(6, 0)},
		checkpoint: 0, vouchers: []int{0, 1, 2, 3, 4, 5, 6}, reissued: []string{"new"}},
	{name: "A2/a pre-prepare in a later view counts for a certificate of an older one", n: 4,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "a")), viewChange(1, 0, prePrepared(1, 1, "a")), viewChange(2, 0)},
		checkpoint: 0, vouchers: []int{0, 1, 2}, reissued: []string{"a"}},
	{name: "A2/a pre-prepare in an older view does not count: undecided", n: 4,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 1, "a")), viewChange(1, 0, prePrepared(1, 0, "a")), viewChange(2, 0)},
		undecided: true},
	{name: "A2/a pre-prepare of another batch does not count: undecided", n: 4,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "a")), viewChange(1, 0, prePrepared(1, 0, "b")), viewChange(2, 0)},
		undecided: true},

	// Conflicting certificates for the same number.
	{name: "A1/conflicting certificates in one view, no quorum without a contradiction: undecided", n: 4,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "a")), viewChange(1, 0, prepared(1, 0, "b")),
			viewChange(2, 0, prepared(1, 0, "b"))},
		undecided: true},
	{name: "A1/a quorum that does not contradict one of two conflicting certificates re-issues it", n: 4,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "a")), viewChange(1, 0, prepared(1, 0, "b")),
			viewChange(2, 0, prepared(1, 0, "b")), viewChange(3, 0)},
		checkpoint: 0, vouchers: []int{0, 1, 2, 3}, reissued: []string{"b"}},
	{name: "A2/a certificate in a later view only its faulty sender pre-prepared loses to the older one", n: 4,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "a")), viewChange(1, 0, prepared(1, 0, "a")),
			viewChange(2, 0, prepared(1, 0, "a")), viewChange(3, 0, prepared(1, 1, "forged"))},
		checkpoint: 0, vouchers: []int{0, 1, 2, 3}, reissued: []string{"a"}},
	{name: "A2/f+1 fail and neither A nor B holds: undecided", n: 4,
		vcs:       []*ViewChange{viewChange(0, 0, prepared(1, 0, "a")), viewChange(1, 0), viewChange(2, 0)},
		undecided: true},
	{name: "A2 fails/B: a quorum prepared nothing, a null request replaces the lone certificate", n: 4,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "a")), viewChange(1, 0), viewChange(2, 0), viewChange(3, 0)},
		checkpoint: 0, vouchers: []int{0, 1, 2, 3}, reissued: []string{null}},
	{name: "A2 needs f+1 = 3 pre-prepares (n=7): two are not enough, undecided", n: 7,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "a")), viewChange(1, 0, prepared(1, 0, "a")),
			viewChange(2, 0), viewChange(3, 0), viewChange(4, 0)},
		undecided: true},
	{name: "A2 needs f+1 = 3 pre-prepares (n=7): a third re-issues the batch", n: 7,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "a")), viewChange(1, 0, prepared(1, 0, "a")),
			viewChange(2, 0, prePrepared(1, 0, "a")), viewChange(3, 0), viewChange(4, 0)},
		checkpoint: 0, vouchers: []int{0, 1, 2, 3, 4}, reissued: []string{"a"}},
	{name: "A1 needs q = 4 of n=5 (not 2f+1 = 3): undecided", n: 5,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "a")), viewChange(1, 0, prepared(1, 0, "b")),
			viewChange(2, 0, prepared(1, 0, "b")), viewChange(3, 0)},
		undecided: true},
	{name: "A1 needs q = 4 of n=5: a fourth that does not contradict re-issues it", n: 5,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "a")), viewChange(1, 0, prepared(1, 0, "b")),
			viewChange(2, 0, prepared(1, 0, "b")), viewChange(3, 0), viewChange(4, 0)},
		checkpoint: 0, vouchers: []int{0, 1, 2, 3, 4}, reissued: []string{"b"}},

	// A checkpoint above some prepared entries.
	{name: "checkpoint above prepared entries: those at or below it are dropped", n: 4,
		vcs: []*ViewChange{
			viewChange(0, 8, prepared(9, 1, "c")),
			viewChange(1, 0, checkpointAt(8), prepared(5, 1, "x"), prepared(8, 1, "y"), prepared(9, 1, "c")),
			viewChange(2, 0, checkpointAt(8), prepared(5, 1, "x"))},
		checkpoint: 8, vouchers: []int{0, 1, 2}, reissued: []string{"c"}},
	{name: "B/only view-changes with low-water mark below n count: one past n is no evidence", n: 4,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "a")), viewChange(1, 0), viewChange(2, 0), viewChange(3, 8)},
		undecided: true},
	{name: "A1/only view-changes with low-water mark below n count: one past n does not complete A1", n: 4,
		vcs: []*ViewChange{
			viewChange(0, 0, prepared(1, 0, "a")), viewChange(1, 0, prepared(1, 0, "a")),
			viewChange(2, 0, prepared(1, 0, "b")), viewChange(3, 8)},
		undecided: true},
	{name: "window: entries past the chosen checkpoint + L are not re-issued", n: 4, window: 16,
		vcs: []*ViewChange{
			viewChange(0, 0), viewChange(1, 0), viewChange(2, 0), viewChange(3, 16, prepared(17, 1, "far"))},
		checkpoint: 0, vouchers: []int{0, 1, 2}},

	// The checkpoint choice.
	{name: "checkpoint/the latest that f+1 vouch for and a quorum allow, not an older one", n: 4,
		vcs:        []*ViewChange{viewChange(0, 16), viewChange(1, 16), viewChange(2, 0, checkpointAt(8))},
		checkpoint: 16, vouchers: []int{0, 1}},
	{name: "checkpoint/f+1 must vouch: a later claim by one replica is not chosen", n: 4,
		vcs:        []*ViewChange{viewChange(0, 0, checkpointAt(8)), viewChange(1, 0), viewChange(2, 0)},
		checkpoint: 0, vouchers: []int{0, 1, 2}},
	{name: "checkpoint/f+1 must vouch for the same state: a forged claim does not add up", n: 4,
		vcs:        []*ViewChange{viewChange(0, 0, checkpointAt(8)), viewChange(1, 0, forgedCheckpointAt(8)), viewChange(2, 0)},
		checkpoint: 0, vouchers: []int{0, 1, 2}},
	{name: "checkpoint/needs a quorum with low-water mark at or below it: undecided", n: 4,
		vcs:       []*ViewChange{viewChange(0, 16), viewChange(1, 16), viewChange(2, 24)},
		undecided: true},
	{name: "checkpoint/a fourth view-change makes the later one allowed by a quorum", n: 4,
		vcs:        []*ViewChange{viewChange(0, 16), viewChange(1, 16), viewChange(2, 24), viewChange(3, 24)},
		checkpoint: 24, vouchers: []int{2, 3}},
	{name: "checkpoint/three view-changes are no quorum of n=5: undecided", n: 5,
		vcs: viewChanges(0, 0, 1, 2), undecided: true},
}

func TestDecideNewView(t *testing.T) {
	for _, tc := range decisionCases {
		t.Run(tc.name, func(t *testing.T) {
			q := NewQuorum(tc.n)
			window := tc.window
			if window == 0 {
				window = 16
			}
			// The cases are messages a replica accepts, not shapes the decision alone sees.
			checker := &Replica{cfg: Config{CheckpointInterval: 8, LogWindow: window}, q: q}
			for _, m := range tc.vcs {
				if err := checker.validViewChange(m, false); err != nil {
					t.Fatalf("case holds an invalid view-change from %d: %v", m.Replica, err)
				}
			}
			d, ok := decideNewView(q, window, decisionView, tc.vcs)
			if tc.undecided {
				if ok {
					t.Fatalf("decided checkpoint %d, %s; want undecided", d.checkpoint.Seq, describe(d.prePrepares))
				}
				return
			}
			if !ok {
				t.Fatal("undecided")
			}
			if d.checkpoint != (CheckpointClaim{tc.checkpoint, stateAt(tc.checkpoint)}) {
				t.Fatalf("checkpoint %d (correct state: %v), want %d", d.checkpoint.Seq,
					d.checkpoint.State == stateAt(d.checkpoint.Seq), tc.checkpoint)
			}
			if !slices.Equal(d.vouchers, tc.vouchers) {
				t.Fatalf("vouchers %v, want %v", d.vouchers, tc.vouchers)
			}
			if len(d.prePrepares) != len(tc.reissued) {
				t.Fatalf("re-issued %s, want %v", describe(d.prePrepares), tc.reissued)
			}
			for i, pp := range d.prePrepares {
				want := nullDigest
				if tc.reissued[i] != null {
					want = BatchDigest(testBatch(tc.reissued[i]))
				}
				seq := tc.checkpoint + uint64(i) + 1
				if pp.View != decisionView || pp.Seq != seq || pp.Digest != want || BatchDigest(pp.Batch) != want {
					t.Fatalf("pre-prepare %d is view %d seq %d %s, want view %d seq %d %s", i, pp.View, pp.Seq,
						describe(d.prePrepares[i:i+1]), decisionView, seq, tc.reissued[i])
				}
			}
			// Every replica decides the same, whatever order it holds the view-changes in.
			reversed := slices.Clone(tc.vcs)
			slices.Reverse(reversed)
			d2, ok2 := decideNewView(q, window, decisionView, reversed)
			if !ok2 || d2.checkpoint != d.checkpoint || !samePrePrepares(d2.prePrepares, d.prePrepares) {
				t.Fatalf("reversed view-changes decide %v %s, want %s", ok2, describe(d2.prePrepares), describe(d.prePrepares))
			}
		})
	}
}

// describe names each pre-prepare's batch as the cases do.
func describe(pps []*PrePrepare) string {
	names := map[Digest]string{nullDigest: null}
	for _, n := range []string{"a", "b", "c", "x", "y", "old", "new", "forged", "far"} {
		names[BatchDigest(testBatch(n))] = n
	}
	var s []string
	for _, pp := range pps {
		name, ok := names[pp.Digest]
		if !ok {
			name = fmt.Sprintf("%x", pp.Digest[:4])
		}
		s = append(s, fmt.Sprintf("%d:%s", pp.Seq, name))
	}
	return fmt.Sprint(s)
}
