package pbft

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

// Catch-up without a checkpoint (catchup.go). Each scenario orders a few requests far
// below the checkpoint interval, goes idle (no more requests, so no checkpoint ever
// comes), and checks that a replica left behind reaches the others' last executed number
// and state digest within a bounded number of ticks. Without catch-up every one of them
// waits for good: the replica behind never gets the pre-prepares.

// sameExecution reports whether the honest replicas executed the same number and hold
// the same state.
func (s *sim) sameExecution() bool {
	first := -1
	for i, r := range s.reps {
		if !s.correct(i) {
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		if r.lastExec != s.reps[first].lastExec || r.StateDigest() != s.reps[first].StateDigest() {
			return false
		}
	}
	return true
}

func (s *sim) describe() string {
	var st []string
	for i, r := range s.reps {
		st = append(st, fmt.Sprintf("r%d(view %d active %v exec %d low %d fault %d caught-up %d)",
			i, r.view, r.viewActive, r.lastExec, r.lowWater, s.faults[i], r.CatchUps()))
	}
	return fmt.Sprint(st)
}

// forgeCommitted is a lying peer's catch-up answer, by turns: another batch with its own
// digest (a commit for something else), the right digest with another batch, and the
// right commit with no batch.
func (s *sim) forgeCommitted(c *Committed) *Committed {
	other := []*Request{{Gateway: "g", Client: "mallory", Timestamp: c.Seq, Op: []byte("forged")}}
	f := *c
	switch s.rng.Intn(3) {
	case 0:
		f.Batch, f.Digest = other, BatchDigest(other)
	case 1:
		f.Batch = other
	default:
		f.Batch = nil
	}
	return &f
}

// behind runs n replicas where replica late hears nothing until heal() while the others
// order requests and go idle; pre-prepares never reach it at all (a primary that keeps
// them from it, or its driver refusing their requests' authenticators, as a joiner's
// does for requests a gateway sent before it knew the joiner).
func behind(t *testing.T, n int, seed int64, late int, faults map[int]fault) (s *sim, heal func()) {
	t.Helper()
	healed := false
	s = newSim(t, simConfig{n: n, seed: seed, requests: 12, drop: 0.02, maxDelay: 2, maxTicks: 6000, faults: faults, durable: true,
		partition: func(tick, from, to int) bool { return !healed && (from == late || to == late) },
		refuse: func(to int, m Message) bool {
			_, pp := m.(*PrePrepare)
			return to == late && pp
		}})
	if !s.run() {
		t.Fatalf("seed %d: requests not answered: %s", seed, s.describe())
	}
	for range 100 { // idle
		s.tick()
	}
	if s.reps[late].lastExec != 0 || s.reps[(late+1)%n].lowWater != 0 || s.reps[(late+1)%n].lastExec == 0 {
		t.Fatalf("seed %d: want the others ahead without a stable checkpoint: %s", seed, s.describe())
	}
	return s, func() { healed = true }
}

// (a) n=4: the replica behind executes what three commits prove committed. Restarted
// from its durable log (which holds no record of what it caught up: a commit of its own
// there would need a pre-prepare it never accepted), it catches up again.
//
// Unless a view change re-issued the numbers: its NEW-VIEW carries pre-prepares the
// driver does not refuse, and brings the replica behind up to date before any peer
// answers, whether the change was under way at the heal (seed 25: replica 2 and the
// replica behind had asked for view 1, the others join as soon as they hear it) or done
// without it (seed 79: the NEW-VIEW is resent to the replica in the older view). Then
// every number it executed must be a pre-prepare of the view the change started.
func TestCatchUpAfterACutWithoutACheckpoint(t *testing.T) {
	caught := 0
	for _, seed := range seedsPlus(10, 25, 79) {
		s, heal := behind(t, 4, seed, 3, nil)
		heal()
		if !s.runUntil(300, s.sameExecution) {
			t.Fatalf("seed %d: the replica behind did not catch up in 300 ticks: %s", seed, s.describe())
		}
		if s.reps[3].CatchUps() > 0 {
			caught++
		} else {
			nv := s.reps[3].vc.accepted
			for seq := uint64(1); seq <= s.reps[3].lastExec; seq++ {
				if e := s.reps[3].log[seq]; nv == nil || e == nil || e.pp == nil || e.pp.View != nv.View {
					t.Fatalf("seed %d: caught up, but neither by catch-up nor by a new view (number %d): %s", seed, seq, s.describe())
				}
			}
		}
		s.checkSafety()
		s.restart(3)
		if !s.runUntil(300, s.sameExecution) {
			t.Fatalf("seed %d: restarted, the replica behind did not catch up again: %s", seed, s.describe())
		}
		s.checkSafety()
	}
	if caught == 0 {
		t.Fatal("no seed caught up by catch-up: the scenario tests nothing")
	}
}

// A replica that caught up sends its peers its commit for each number, as it would have
// had it committed the normal way: a gateway that waits, after a recovery, until every
// live replica's commit is in (pbft_status, pbft_cluster and a read on stdio do) would
// otherwise wait for good, since the peers ahead of it never ask for anything. Like any
// commit sent after its receiver executed, nothing resends it, so the bus loses nothing
// once healed (a NATS connection does not).
//
// Seed 69: a new view's pre-prepares brought the replica behind to 9 after the commits
// for 10 to 12 formed a quorum among its claims; nothing checked them again, so it stayed
// at 9 for good while its peers kept repeating their answers.
func TestCatchUpSendsItsCommits(t *testing.T) {
	checked := 0
	for _, seed := range seedsPlus(10, 69, 120) {
		s, heal := behind(t, 4, seed, 3, nil)
		heal()
		s.cfg.drop = 0
		if !s.runUntil(300, s.sameExecution) {
			t.Fatalf("seed %d: the replica behind did not catch up in 300 ticks: %s", seed, s.describe())
		}
		if s.reps[3].CatchUps() == 0 {
			continue // a new view's pre-prepares brought it up to date first
		}
		checked++
		last := s.reps[3].lastExec
		// What the gateway reads: a peer's status names the commits it holds in the view
		// of the pre-prepare it executed, which is not its current view while it is
		// changing view (seed 120: a peer stranded in a view change nobody joined).
		peersHoldIts := func() bool {
			for i := range 3 {
				for seq := uint64(1); seq <= last; seq++ {
					if !slices.Contains(s.reps[i].Status(seq).CommitsFrom, 3) {
						return false
					}
				}
			}
			return true
		}
		if !s.runUntil(100, peersHoldIts) {
			t.Fatalf("seed %d: the peers never got the commits of the replica that caught up: %s", seed, s.describe())
		}
		s.checkSafety()
	}
	if checked == 0 {
		t.Fatal("no seed caught up by catch-up: the scenario tests nothing")
	}
}

// n=7: the primary that pre-prepared everything crashes once the others went idle; the
// replica behind catches up from the five other members' commits (f = 2: one crashed,
// one behind).
func TestCatchUpWhenThePrimaryIsGone(t *testing.T) {
	for seed := int64(1); seed <= int64(seedCount(5)); seed++ {
		s, heal := behind(t, 7, seed, 6, nil)
		s.faults[s.reps[1].Primary()] = crashed
		heal()
		if !s.runUntil(300, s.sameExecution) {
			t.Fatalf("seed %d: the replica behind did not catch up in 300 ticks: %s", seed, s.describe())
		}
		s.checkSafety()
	}
}

// (c) A peer that lies in its catch-up answers (another batch with its digest, the right
// digest with another batch, no batch) and in its commits makes the replica behind
// neither diverge nor stall: with n=7 the five other correct members' commits are a
// quorum, even when one of them executed following a view passively and so holds no
// commit of its own (seed 32). With n=4 the two correct ones are not: the replica behind executes nothing on
// the liar's word, and waits for another way (a checkpoint, or a new view's pre-prepares).
//
// With n=4 the peer lies only from the heal on: a liar while another replica is cut off
// is two faults for f=1, and nothing promises the requests an answer then (PBFT_LONG seed
// 7: its forged commit retransmissions left a correct replica unable to commit a number,
// and only a view change could go on, which a Byzantine peer need not join). Its lies
// before the heal would reach no catch-up anyway: the replica behind hears nothing.
func TestCatchUpIgnoresALyingPeer(t *testing.T) {
	for _, seed := range seedsPlus(5, 7, 32) {
		s, heal := behind(t, 7, seed, 6, map[int]fault{2: lieCaughtUp})
		heal()
		if !s.runUntil(300, s.sameExecution) {
			t.Fatalf("seed %d: n=7: the replica behind did not catch up in 300 ticks: %s", seed, s.describe())
		}
		s.checkSafety()

		s, heal = behind(t, 4, seed, 3, nil)
		s.faults[1] = lieCaughtUp
		heal()
		s.runUntil(300, func() bool { return false })
		s.checkSafety() // what it executed, by whatever path, is what the others did
	}
}

// A peer's answer is bounded and not repeated before the replica behind could use it:
// each number goes once per peer while the replica behind catches up.
func TestCatchUpAnswersAreBounded(t *testing.T) {
	s, heal := behind(t, 4, 1, 3, nil)
	heal()
	sent := map[[2]uint64]int{}
	for range 300 {
		s.tick()
		for _, m := range s.queue {
			if m.to == 3 && len(m.data) > 0 && Kind(m.data[0]) == KindCommitted {
				c, err := Unmarshal(m.data)
				if err != nil {
					t.Fatal(err)
				}
				sent[[2]uint64{uint64(m.from), c.(*Committed).Seq}]++
			}
		}
		if s.sameExecution() {
			break
		}
	}
	if !s.sameExecution() || len(sent) == 0 {
		t.Fatalf("no catch-up: %s", s.describe())
	}
	for k, n := range sent {
		if n > 2 { // in the queue over a few ticks, and duplicated by the network
			t.Fatalf("replica %d sent number %d %d times", k[0], k[1], n)
		}
	}
	// Once caught up, idle statuses make no answers at all.
	for range 100 {
		s.tick()
		for _, m := range s.queue {
			if Kind(m.data[0]) == KindCommitted {
				t.Fatalf("a catch-up answer among replicas that all executed alike: %s", s.describe())
			}
		}
	}
}

// (b) A joiner admitted by a reconfiguration installs the state at it; the cluster then
// orders a few requests and goes idle, far from its next checkpoint. The gateway, started
// before the joiner existed, authenticates its requests for the old members only, so the
// joiner's driver refuses every pre-prepare carrying them (and it could never prepare
// them): it catches up from its members' commits.
func TestCatchUpJoinerAfterAdmission(t *testing.T) {
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, nil)
		s.k, s.l = 64, 128
		for i := range ids(4) {
			s.add(ids(4), i, 0, nil)
		}
		c0 := Membership{Members: ids(4)}
		s.write(c0, "set x=1", 4)
		s.auth = []byte("old members")
		s.refuse = func(to string, m Message) bool {
			pp, ok := m.(*PrePrepare)
			return ok && to == "n5" && slices.ContainsFunc(pp.Batch, func(r *Request) bool { return bytes.Equal(r.Auth, s.auth) })
		}
		c1 := s.reconfigure(c0, ids(5))
		n5 := s.reps["n5"]
		if !n5.IsMember() || n5.LastExecuted() != 2 {
			t.Fatalf("seed %d: joiner member %v executed %d, want the state at the reconfiguration (2)", seed, n5.IsMember(), n5.LastExecuted())
		}
		for i := range 3 {
			// The joiner takes no part in ordering; it may answer late, by catch-up.
			if _, conf, _ := s.submit(simAdmin, "c1", fmt.Appendf(nil, "set y=%d", i), c1.Members); conf != c1.Conf {
				t.Fatalf("seed %d: answered in configuration %d", seed, conf)
			}
		}
		s.settle(c1) // idle: no request, no checkpoint
		if n5.LastExecuted() != 5 || n5.CatchUps() == 0 || n5.StableCheckpoint() != 2 {
			t.Fatalf("seed %d: joiner executed %d (%d by catch-up), stable %d", seed, n5.LastExecuted(), n5.CatchUps(), n5.StableCheckpoint())
		}
		// Requests authenticated for it are ordered with it as before.
		s.auth = nil
		s.write(c1, "set z=1", 5)
		s.settle(c1)
	}
}
