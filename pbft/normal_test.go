package pbft

import (
	"fmt"
	"testing"
)

func TestQuorumMatchesPaperForThreeFPlusOne(t *testing.T) {
	for f := 0; f <= 20; f++ {
		q := NewQuorum(3*f + 1)
		if q.F != f || q.Commit() != 2*f+1 || q.Prepare() != 2*f || q.Weak() != f+1 {
			t.Fatalf("n=%d: got f=%d commit=%d prepare=%d weak=%d", 3*f+1, q.F, q.Commit(), q.Prepare(), q.Weak())
		}
	}
}

// Two commit quorums must share at least f+1 replicas (so a correct one) for every n,
// and a commit quorum must be reachable with f replicas down.
func TestQuorumIntersectionForAnyN(t *testing.T) {
	for n := 1; n <= 100; n++ {
		q := NewQuorum(n)
		if 2*q.Commit()-n < q.F+1 {
			t.Fatalf("n=%d: quorums of %d intersect in %d < f+1=%d", n, q.Commit(), 2*q.Commit()-n, q.F+1)
		}
		if q.Commit() > n-q.F {
			t.Fatalf("n=%d: quorum %d unreachable with f=%d down", n, q.Commit(), q.F)
		}
	}
}

func TestNormalCaseCountsAndExecution(t *testing.T) {
	for _, n := range []int{1, 4, 7, 10} {
		t.Run(fmt.Sprint("n=", n), func(t *testing.T) {
			s := newSim(t, simConfig{n: n, seed: 1, clients: 1, requests: 3})
			if !s.run() {
				t.Fatalf("requests not answered")
			}
			s.converge(200)
			s.checkSafety()
			// Let stragglers' votes arrive: all replicas must have logged every vote.
			s.runUntil(50, func() bool { return false })
			q := NewQuorum(n)
			for i, r := range s.reps {
				for seq := uint64(1); seq <= 3; seq++ {
					st := r.Status(seq)
					if st.Phase != PhaseCommitted || !st.Executed {
						t.Fatalf("replica %d seq %d: %+v", i, seq, st)
					}
					if len(st.PreparesFrom) != n-1 || len(st.CommitsFrom) != n {
						t.Fatalf("replica %d seq %d: prepares %v commits %v (quorum %+v)", i, seq, st.PreparesFrom, st.CommitsFrom, q)
					}
				}
				if st := r.Status(4); st.Phase != PhaseNone || st.Executed {
					t.Fatalf("unassigned seq shows %+v", st)
				}
			}
		})
	}
}

func TestRetransmittedRequestIsOrderedOnce(t *testing.T) {
	s := newSim(t, simConfig{n: 4, seed: 2, clients: 1, requests: 1})
	if !s.run() {
		t.Fatal("not answered")
	}
	req := &Request{Gateway: "g", Client: "c0", Timestamp: 1, Op: []byte("op-c0-1")}
	for j := range s.reps {
		s.sendRequest(j, req)
	}
	s.runUntil(100, func() bool { return false })
	for i, r := range s.reps {
		if r.LastExecuted() != 1 {
			t.Fatalf("replica %d executed %d batches, want 1", i, r.LastExecuted())
		}
		seq, _, ordered, executed := r.Lookup("c0", 1)
		if seq != 1 || !ordered || !executed {
			t.Fatalf("lookup: %d %v %v", seq, ordered, executed)
		}
	}
}

// The seeded network tests of the normal case: loss, duplication, reordering and delay,
// with and without a crashed backup. Every correct replica must execute the same sequence
// (checked per number and by state digest) and every request must be answered.
func TestSimNormalCaseUnderNetworkFaults(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for _, n := range []int{4, 7} {
		for _, crash := range []bool{false, true} {
			for seed := int64(1); seed <= int64(seeds); seed++ {
				cfg := simConfig{n: n, seed: seed, drop: 0.05, dup: 0.05, maxDelay: 3, clients: 4, requests: 60,
					checkpoint: 8, window: 16, batchMax: 4, viewChangeTks: 80}
				if crash {
					cfg.faults = map[int]fault{n - 1: crashed}
				}
				s := newSim(t, cfg)
				if !s.run() {
					t.Fatalf("n=%d crash=%v seed %d: only %d/%d answered by tick %d", n, crash, seed, s.done, cfg.requests, s.now)
				}
				s.converge(2000)
				s.checkSafety()
			}
		}
	}
}
