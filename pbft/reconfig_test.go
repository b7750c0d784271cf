package pbft

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func ids(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("n%d", i))
	}
	return out
}

var reconfSeeds = []int64{1, 2, 3}

// write executes a set through the members of m and checks it was answered by every
// live member of m in configuration m.Conf.
func (s *rsim) write(m Membership, op string, want int) {
	s.t.Helper()
	res, conf, n := s.submit(simAdmin, "c1", []byte(op), m.Members)
	if conf != m.Conf || n != want || len(res) == 0 {
		s.t.Fatalf("seed %d: %q answered %q by %d replicas of configuration %d, want %d of %d", s.seed, op, res, n, conf, want, m.Conf)
	}
}

func (s *rsim) checkMember(m Membership, stable uint64) {
	s.t.Helper()
	for i, id := range m.Members {
		r := s.reps[id]
		if s.crashed[id] {
			continue
		}
		if r.Configuration() != m.Conf || !r.IsMember() || r.ID() != i || r.Quorum().N != len(m.Members) {
			s.t.Fatalf("seed %d: %s in configuration %d as %d of %d, want %d as %d of %d", s.seed, id, r.Configuration(), r.ID(), r.Quorum().N, m.Conf, i, len(m.Members))
		}
		if stable != 0 && r.StableCheckpoint() != stable {
			s.t.Fatalf("seed %d: %s stable checkpoint %d, want %d", s.seed, id, r.StableCheckpoint(), stable)
		}
	}
}

func TestReconfigGrowFourToSeven(t *testing.T) {
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, ids(4))
		c0 := Membership{Conf: 0, Members: ids(4)}
		s.write(c0, "set x=1", 4)
		c1 := s.reconfigure(c0, ids(7))
		s.settle(c1)
		s.checkMember(c1, 2) // the reconfiguration at 2 is the first stable checkpoint
		s.write(c1, "set y=2", 7)
		s.settle(c1)
		for _, id := range ids(7) {
			if r := s.reps[id]; r.Primary() != 0 || r.View() != 0 || r.LastExecuted() != 3 {
				t.Fatalf("seed %d: %s primary %d view %d executed %d", seed, id, r.Primary(), r.View(), r.LastExecuted())
			}
		}
	}
}

func TestReconfigShrinkRemovingThePrimary(t *testing.T) {
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, ids(7))
		c0 := Membership{Members: ids(7)}
		s.write(c0, "set x=1", 7)
		c1 := s.reconfigure(c0, []string{"n2", "n3", "n4", "n5"})
		s.settle(c1)
		s.checkMember(c1, 2)
		s.write(c1, "set y=2", 4)
		s.settle(c1)
		for _, id := range []string{"n1", "n6", "n7"} {
			r := s.reps[id]
			if r.IsMember() || r.Configuration() != 1 {
				t.Fatalf("seed %d: %s left but is member %v of %d", seed, id, r.IsMember(), r.Configuration())
			}
			if r.LastExecuted() != 2 {
				t.Fatalf("seed %d: %s executed %d after leaving", seed, id, r.LastExecuted())
			}
			// What a leaving replica is sent for the new configuration is refused.
			if err := r.StepIn(1, 0, &Prepare{View: 0, Seq: 3, Replica: 0}); err == nil {
				t.Fatalf("seed %d: %s took a prepare of the configuration it left", seed, id)
			}
		}
		if p := s.reps["n2"]; !p.IsPrimary() {
			t.Fatalf("seed %d: n2 is not the primary of configuration 1", seed)
		}
	}
}

func TestReconfigShrinkToOneAndGrowAgain(t *testing.T) {
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, ids(4))
		c0 := Membership{Members: ids(4)}
		s.write(c0, "set x=1", 4)
		c1 := s.reconfigure(c0, []string{"n3"})
		s.settle(c1)
		s.write(c1, "set y=2", 1)
		c2 := s.reconfigure(c1, []string{"n3", "n5", "n6", "n1"})
		s.settle(c2)
		s.checkMember(c2, 4)
		s.write(c2, "set z=3", 4)
		s.settle(c2)
	}
}

func TestReconfigViewChangeRightAfter(t *testing.T) {
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, ids(4))
		c0 := Membership{Members: ids(4)}
		c1 := s.reconfigure(c0, []string{"n4", "n1", "n2", "n3", "n5"})
		s.settle(c1)
		s.crashed["n4"] = true // the new primary
		s.write(c1, "set x=1", 4)
		s.settle(c1)
		for _, id := range []string{"n1", "n2", "n3", "n5"} {
			r := s.reps[id]
			if r.Configuration() != 1 || r.View() != 1 || !r.IsPrimary() && id == "n1" {
				t.Fatalf("seed %d: %s in configuration %d view %d", seed, id, r.Configuration(), r.View())
			}
		}
	}
}

func TestReconfigWhileAMemberIsCrashed(t *testing.T) {
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, ids(4))
		c0 := Membership{Members: ids(4)}
		s.crashed["n4"] = true
		s.write(c0, "set x=1", 3)
		c1 := s.reconfigure(c0, ids(5))
		s.settle(c1)
		s.write(c1, "set y=2", 4)
		delete(s.crashed, "n4")
		s.settle(c1) // n4 recovers into configuration 1
		s.checkMember(c1, 0)
		s.write(c1, "set z=3", 5)
	}
}

func TestReconfigQuorumsOfFiveAndSix(t *testing.T) {
	s := newRsim(t, 1, ids(4))
	c0 := Membership{Members: ids(4)}
	c1 := s.reconfigure(c0, ids(5))
	s.settle(c1)
	if q := s.reps["n5"].Quorum(); q.Commit() != 4 || q.Prepare() != 3 {
		t.Fatalf("n = 5: quorum %d, prepare %d", q.Commit(), q.Prepare())
	}
	s.write(c1, "set x=1", 5)
	s.crashed["n5"] = true
	s.write(c1, "set x=2", 4) // q = 4 of 5: one crashed, still answered
	delete(s.crashed, "n5")
	s.settle(c1)
	c2 := s.reconfigure(c1, ids(6))
	s.settle(c2)
	// q = floor((n+f)/2)+1 with f = floor((n-1)/3) = 1: 4 at n = 6 as at n = 5.
	if q := s.reps["n6"].Quorum(); q.Commit() != 4 {
		t.Fatalf("n = 6: quorum %d", q.Commit())
	}
	s.crashed["n6"] = true
	s.crashed["n5"] = true
	s.write(c2, "set x=3", 4)
	// With three of six down nothing commits.
	s.crashed["n4"] = true
	s.nextT++
	req := &Request{Gateway: simAdmin, Client: "c1", Timestamp: s.nextT, Op: []byte("set x=4")}
	for _, id := range ids(3) {
		_ = s.reps[id].Step(FromClient, req)
		s.flush(id)
	}
	for range 300 {
		s.tick()
	}
	if _, _, _, ok := s.accepted(keyOf(req)); ok {
		t.Fatal("n = 6 with three replicas down answered a write")
	}
}

func TestReconfigFromNonAdminChangesNothing(t *testing.T) {
	s := newRsim(t, 1, ids(4))
	c0 := Membership{Members: ids(4)}
	s.join(c0, ids(5))
	res, conf, n := s.submit("mallory", "m", ReconfigOp(c0, ids(5)), c0.Members)
	if !strings.HasPrefix(string(res), ReconfigRefusedPrefix) || conf != 0 || n != 4 {
		t.Fatalf("non-admin reconfiguration answered %q (%d replies, configuration %d)", res, n, conf)
	}
	s.write(c0, "set x=1", 4) // ordering goes on: the barrier went with the refusal
	s.settle(c0)
	for _, id := range ids(4) {
		if r := s.reps[id]; r.Configuration() != 0 || len(r.Members()) != 4 {
			t.Fatalf("%s changed configuration", id)
		}
	}
	if !s.reps["n5"].Joining() {
		t.Fatal("n5 joined after a refused reconfiguration")
	}
	// A stale configuration number is refused too.
	res, _, _ = s.submit(simAdmin, "admin", ReconfigOp(Membership{Conf: 7, Members: c0.Members}, ids(5)), c0.Members)
	if !strings.HasPrefix(string(res), ReconfigRefusedPrefix) {
		t.Fatalf("stale reconfiguration answered %q", res)
	}
}

// A Byzantine primary cannot order other requests with the reconfiguration, nor above
// it, nor a reconfiguration below what it already ordered.
func TestReconfigBatchRulesAtBackups(t *testing.T) {
	newBackup := func() *Replica {
		c := DefaultConfig()
		c.ID, c.N, c.Members, c.Admin, c.App = 1, 4, ids(4), simAdmin, &chainApp{}
		r, err := NewReplica(c)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rc := &Request{Gateway: simAdmin, Client: "admin", Timestamp: 1, Op: ReconfigOp(Membership{Members: ids(4)}, ids(5))}
	op := &Request{Gateway: simAdmin, Client: "c", Timestamp: 1, Op: []byte("set x=1")}
	pp := func(seq uint64, batch ...*Request) *PrePrepare {
		return &PrePrepare{View: 0, Seq: seq, Digest: BatchDigest(batch), Batch: batch}
	}
	r := newBackup()
	if err := r.Step(0, pp(1, rc, op)); err == nil {
		t.Fatal("a reconfiguration sharing its batch was accepted")
	}
	if err := r.Step(0, pp(1, rc)); err != nil {
		t.Fatal(err)
	}
	if err := r.Step(0, pp(2, op)); err == nil {
		t.Fatal("a pre-prepare above the reconfiguration was accepted")
	}
	r = newBackup()
	if err := r.Step(0, pp(2, op)); err != nil {
		t.Fatal(err)
	}
	if err := r.Step(0, pp(1, rc)); err == nil {
		t.Fatal("a reconfiguration below an ordered number was accepted")
	}
	// The primary itself puts it alone and stops there.
	c := DefaultConfig()
	c.ID, c.N, c.Members, c.Admin, c.App = 0, 4, ids(4), simAdmin, &chainApp{}
	p, _ := NewReplica(c)
	for _, m := range []*Request{op, rc, {Gateway: simAdmin, Client: "c", Timestamp: 2, Op: []byte("set y=1")}} {
		_ = p.Step(FromClient, m)
	}
	p.Propose()
	var pps []*PrePrepare
	for _, o := range p.Ready().Messages {
		if m, ok := o.Msg.(*PrePrepare); ok {
			pps = append(pps, m)
		}
	}
	if len(pps) != 2 || len(pps[1].Batch) != 1 || !IsReconfig(pps[1].Batch[0].Op) {
		t.Fatalf("primary ordered %d batches around the reconfiguration", len(pps))
	}
}

func TestReconfigJoinerRefusesAForgedState(t *testing.T) {
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, ids(4))
		// All but one old member serve forged state (they vote honestly): the joiner
		// must refuse what does not match the certificate until n4 serves it.
		s.liar["n1"], s.liar["n2"], s.liar["n3"] = true, true, true
		c0 := Membership{Members: ids(4)}
		s.write(c0, "set x=1", 4)
		c1 := s.reconfigure(c0, ids(5))
		s.settle(c1)
		if s.stateBad == 0 {
			t.Fatalf("seed %d: the joiner took no forged state to refuse", seed)
		}
		if !bytes.Equal(s.apps["n5"].Snapshot(), s.apps["n2"].Snapshot()) {
			t.Fatalf("seed %d: the joiner installed another state", seed)
		}
	}
}

// A replica killed after a reconfiguration restarts from its durable log into the
// membership in force, whatever configuration its process was started with.
func TestReconfigRestartFromTheDurableLog(t *testing.T) {
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, nil)
		s.durable = true
		for i := range ids(4) {
			s.add(ids(4), i, 0, nil)
		}
		c0 := Membership{Members: ids(4)}
		s.write(c0, "set x=1", 4)
		c1 := s.reconfigure(c0, []string{"n2", "n3", "n4", "n5", "n1"})
		s.settle(c1)
		s.write(c1, "set y=2", 5)
		s.settle(c1)
		s.restart("n1") // started as index 0 of configuration 0
		s.restart("n5") // started as a joiner
		for _, id := range []string{"n1", "n5"} {
			if r := s.reps[id]; r.Configuration() != 1 || !r.IsMember() || r.Joining() {
				t.Fatalf("seed %d: %s restarted in configuration %d (member %v)", seed, id, r.Configuration(), r.IsMember())
			}
		}
		s.checkMember(c1, 0)
		s.write(c1, "set z=3", 5)
		s.settle(c1)
	}
}

// The old primary is down: the reconfiguration is ordered after a view change of the
// configuration it ends, and the new configuration, whose view 0 primary is that same
// crashed replica, changes view again before its first request.
func TestReconfigAcrossViewChangesOnBothSides(t *testing.T) {
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, ids(4))
		c0 := Membership{Members: ids(4)}
		s.crashed["n1"] = true
		c1 := s.reconfigure(c0, ids(5)) // answered only once view 1 of configuration 0 ordered it
		s.settle(c1)
		s.write(c1, "set x=1", 4)
		s.settle(c1)
		for _, id := range []string{"n2", "n3", "n4", "n5"} {
			if r := s.reps[id]; r.Configuration() != 1 || r.View() != 1 || r.Primary() != 1 {
				t.Fatalf("seed %d: %s in configuration %d view %d primary %d", seed, id, r.Configuration(), r.View(), r.Primary())
			}
		}
	}
}
