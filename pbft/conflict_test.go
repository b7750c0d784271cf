package pbft

import (
	"testing"
)

// conflictReplies returns who answered (client, t) with ConflictResult at seq, and
// fails on any other reply to it.
func conflictReplies(t *testing.T, s *sim, client string, ts, seq uint64) map[int]bool {
	t.Helper()
	from := map[int]bool{}
	for _, rep := range s.replies {
		if rep.Client != client || rep.Timestamp != ts {
			continue
		}
		if !IsConflict(rep.Result) || rep.Seq != seq {
			t.Fatalf("seed %d: replica %d answered the conflicting request with %q at %d", s.cfg.seed, rep.Replica, rep.Result, rep.Seq)
		}
		from[rep.Replica] = true
	}
	return from
}

func executedEverywhere(s *sim, seq uint64) func() bool {
	return func() bool {
		for _, r := range s.reps {
			if r.lastExec < seq {
				return false
			}
		}
		return true
	}
}

// A request id (client, timestamp) that executed with one operation and comes again
// with another is not ordered: every replica answers it with ConflictResult at the
// first one's number, so a gateway sees f+1 matching conflicts.
func TestConflictingRetransmissionOfAnExecutedRequest(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		s := newSim(t, simConfig{n: 4, seed: seed, checkpoint: 8, window: 16, batchMax: 4, viewChangeTks: 40, maxTicks: 2000})
		a := &Request{Gateway: "g", Client: "c", Timestamp: 1, Op: []byte("get x")}
		b := &Request{Gateway: "g", Client: "c", Timestamp: 1, Op: []byte("set x=7")}
		s.sendRequest(0, a)
		if !s.runUntil(500, executedEverywhere(s, 1)) {
			t.Fatalf("seed %d: the first request did not execute", seed)
		}
		s.replies = nil
		for j := range s.reps {
			s.sendRequest(j, b)
		}
		s.runUntil(200, func() bool { return false })
		if from := conflictReplies(t, s, "c", 1, 1); len(from) != 4 {
			t.Fatalf("seed %d: conflicts from %v, want all 4 replicas", seed, from)
		}
		for i, r := range s.reps {
			if r.lastExec != 1 {
				t.Fatalf("seed %d: replica %d executed %d numbers: the conflicting request was ordered", seed, i, r.lastExec)
			}
		}
	}
}

// The same while the first is ordered but not yet executed: the primary answers the
// second as a conflict at once and does not order it; once the first executed, every
// replica does.
func TestConflictingRequestInFlight(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		s := newSim(t, simConfig{n: 4, seed: seed, checkpoint: 8, window: 16, batchMax: 4, viewChangeTks: 40, maxTicks: 2000})
		a := &Request{Gateway: "g", Client: "c", Timestamp: 1, Op: []byte("get x")}
		b := &Request{Gateway: "g", Client: "c", Timestamp: 1, Op: []byte("set x=7")}
		p := s.reps[0]
		if err := p.Step(FromClient, a); err != nil {
			t.Fatal(err)
		}
		s.flush(0) // proposes a at 1; its pre-prepare is on the network
		if err := p.Step(FromClient, b); err != nil {
			t.Fatal(err)
		}
		conflict := false
		for _, o := range p.Ready().Messages {
			if rep, ok := o.Msg.(*Reply); ok && IsConflict(rep.Result) && rep.Seq == 1 {
				conflict = true
			}
		}
		if !conflict {
			t.Fatalf("seed %d: the primary did not answer the in-flight conflicting request", seed)
		}
		for j := 1; j < len(s.reps); j++ {
			s.sendRequest(j, b) // the backups see it too, before or after a's pre-prepare
		}
		if !s.runUntil(500, executedEverywhere(s, 1)) {
			t.Fatalf("seed %d: the first request did not execute", seed)
		}
		s.runUntil(200, func() bool { return false })
		for i, r := range s.reps {
			if r.lastExec != 1 || s.executed[i][1] != BatchDigest([]*Request{a}) {
				t.Fatalf("seed %d: replica %d executed %d numbers, 1 as %x", seed, i, r.lastExec, s.executed[i][1])
			}
		}
		s.replies = nil
		for j := range s.reps {
			s.sendRequest(j, b)
		}
		s.runUntil(200, func() bool { return false })
		if from := conflictReplies(t, s, "c", 1, 1); len(from) != 4 {
			t.Fatalf("seed %d: conflicts from %v, want all 4 replicas", seed, from)
		}
	}
}

// A faulty primary that orders two operations under one request id gets the second
// refused on every replica: it executes nothing and is answered as a conflict.
func TestConflictingRequestsInOneBatch(t *testing.T) {
	s := newSim(t, simConfig{n: 4, seed: 1, checkpoint: 8, window: 16, batchMax: 4, viewChangeTks: 40, maxTicks: 2000})
	a := &Request{Gateway: "g", Client: "c", Timestamp: 1, Op: []byte("get x")}
	b := &Request{Gateway: "g", Client: "c", Timestamp: 1, Op: []byte("set x=7")}
	batch := []*Request{a, b}
	pp := &PrePrepare{View: 0, Seq: 1, Digest: BatchDigest(batch), Batch: batch}
	for j := 1; j < len(s.reps); j++ {
		s.enqueue(0, j, pp)
	}
	if !s.runUntil(500, func() bool {
		for _, r := range s.reps[1:] {
			if r.lastExec < 1 {
				return false
			}
		}
		return true
	}) {
		t.Fatal("the batch did not execute")
	}
	conflicts := map[int]bool{}
	for _, rep := range s.replies {
		if IsConflict(rep.Result) && rep.Seq == 1 {
			conflicts[rep.Replica] = true
		}
	}
	if len(conflicts) != 3 {
		t.Fatalf("conflict replies from %v, want the 3 backups", conflicts)
	}
	want := (&chainApp{})
	want.Execute(a.Op)
	for j, app := range s.apps[1:] {
		if app.state != want.state {
			t.Fatalf("replica %d executed more than the first operation", j+1)
		}
	}
}
