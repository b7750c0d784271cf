package pbft

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

// addAwaiting starts members[i] as a process told only the membership it joins
// (Config.Join): no configuration number, no old members.
func (s *rsim) addAwaiting(members []string, i int) *Replica {
	members = slices.Clone(members)
	mk := func() *Replica {
		r := s.make(members, i, 0, nil)
		c := r.cfg
		c.Join = true
		r, err := NewReplica(c)
		if err != nil {
			s.t.Fatal(err)
		}
		s.reps[members[i]] = r
		return r
	}
	s.remake[members[i]] = mk
	s.disk[members[i]] = nil
	return mk()
}

// A joiner told only its new membership takes no part until the administrator's
// reconfiguration reaches it; a request from anyone else, or to another membership,
// admits nothing. Admitted, it fetches the state the old members certify and is a member
// of configuration 1; restarted from its log, it is again.
func TestJoinerAdmittedByTheAdministrator(t *testing.T) {
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, nil)
		s.durable = true
		for i := range ids(4) {
			s.add(ids(4), i, 0, nil)
		}
		c0 := Membership{Members: ids(4)}
		n5 := s.addAwaiting(ids(5), 4)
		s.write(c0, "set x=1", 4)
		for _, req := range []*Request{
			{Gateway: "mallory", Client: "m", Timestamp: 1, Op: ReconfigOp(c0, ids(5))},
			{Gateway: simAdmin, Client: "admin", Timestamp: 1, Op: ReconfigOp(c0, append(ids(4), "n6"))},
			{Gateway: simAdmin, Client: "admin", Timestamp: 1, Op: []byte("set x=2")},
			{Gateway: simAdmin, Client: "admin", Timestamp: 1, Op: ReconfigOp(Membership{Members: ids(5)}, ids(5))},
		} {
			if err := n5.Step(FromClient, req); err == nil {
				t.Fatalf("seed %d: %q from %s admitted the joiner", seed, req.Op, req.Gateway)
			}
		}
		if n5.IsMember() || !n5.Joining() || n5.Configuration() != 0 {
			t.Fatalf("seed %d: n5 member %v joining %v before its admission", seed, n5.IsMember(), n5.Joining())
		}
		// Messages of the old membership reach it, and change nothing.
		for range 50 {
			s.tick()
		}
		if n5.IsMember() || !n5.Joining() {
			t.Fatalf("seed %d: n5 joined on its own", seed)
		}
		res, conf, _ := s.submit(simAdmin, "admin", ReconfigOp(c0, ids(5)), ids(5))
		m, ok := DecodeReconfigResult(res)
		if !ok || conf != 0 || m.Conf != 1 {
			t.Fatalf("seed %d: reconfiguration answered %q in configuration %d", seed, res, conf)
		}
		s.settle(m)
		s.checkMember(m, 2)
		s.write(m, "set y=2", 5)
		s.settle(m)
		s.restart("n5")
		if r := s.reps["n5"]; r.Configuration() != 1 || !r.IsMember() || r.Joining() {
			t.Fatalf("seed %d: n5 restarted in configuration %d, member %v", seed, r.Configuration(), r.IsMember())
		}
		s.settle(m) // it executes again what commits prove committed
		s.write(m, "set z=3", 5)
		s.settle(m)
	}
}

// An admitted joiner installs only the state a quorum of the old members certify:
// three of the four serve forged state (and vote honestly), and it refuses their state
// until the fourth serves the genuine one.
func TestAdmittedJoinerRefusesForgedState(t *testing.T) {
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, ids(4))
		s.liar["n1"], s.liar["n2"], s.liar["n3"] = true, true, true
		c0 := Membership{Members: ids(4)}
		s.addAwaiting(ids(5), 4)
		s.write(c0, "set x=1", 4)
		res, _, _ := s.submit(simAdmin, "admin", ReconfigOp(c0, ids(5)), ids(5))
		m, ok := DecodeReconfigResult(res)
		if !ok {
			t.Fatalf("seed %d: %q", seed, res)
		}
		s.settle(m)
		if s.stateBad == 0 {
			t.Fatalf("seed %d: the joiner took no forged state to refuse", seed)
		}
		if !bytes.Equal(s.apps["n5"].Snapshot(), s.apps["n4"].Snapshot()) {
			t.Fatalf("seed %d: the joiner installed another state", seed)
		}
	}
}

// The old members refuse a reconfiguration that names other members than theirs as the
// configuration it ends: a joiner trusts that list to certify its state.
func TestReconfigNamingOtherOldMembersIsRefused(t *testing.T) {
	s := newRsim(t, 1, ids(4))
	c0 := Membership{Members: ids(4)}
	forged := Membership{Members: []string{"n1", "x2", "x3", "x4"}}
	res, conf, n := s.submit(simAdmin, "admin", ReconfigOp(forged, ids(5)), c0.Members)
	if !bytes.HasPrefix(res, []byte(ReconfigRefusedPrefix)) || conf != 0 || n != 4 {
		t.Fatalf("answered %q (%d replies, configuration %d)", res, n, conf)
	}
	s.write(c0, "set x=1", 4)
}

// A joiner killed after its admission and before it holds the state restarts admitted
// (the admission is in its durable log) and joins.
func TestAdmissionSurvivesARestart(t *testing.T) {
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, nil)
		s.durable = true
		for i := range ids(4) {
			s.add(ids(4), i, 0, nil)
		}
		c0 := Membership{Members: ids(4)}
		n5 := s.addAwaiting(ids(5), 4)
		s.write(c0, "set x=1", 4)
		op := ReconfigOp(c0, ids(5))
		s.nextT++
		if err := n5.Step(FromClient, &Request{Gateway: simAdmin, Client: "admin", Timestamp: s.nextT, Op: op}); err != nil {
			t.Fatal(err)
		}
		s.flush("n5")
		s.restart("n5")
		if r := s.reps["n5"]; !r.Joining() || r.IsMember() || r.Configuration() != 1 || r.MembersOf(0) == nil {
			t.Fatalf("seed %d: n5 restarted joining %v member %v in configuration %d", seed, r.Joining(), r.IsMember(), r.Configuration())
		}
		// The reconfiguration then reaches only the old members.
		res, _, _ := s.submit(simAdmin, "admin", op, c0.Members)
		m, ok := DecodeReconfigResult(res)
		if !ok {
			t.Fatalf("seed %d: %q", seed, res)
		}
		s.settle(m)
		s.write(m, "set y=2", 5)
	}
}

// A joiner admitted only after its configuration moved past its start (the state at the
// reconfiguration is gone) installs a later state of its own configuration, certified by
// f'+1 of its members, and takes part; also when that configuration changed view
// meanwhile and needs the joiner for its quorum (its first primary crashed).
func TestLateAdmissionJoinsALaterState(t *testing.T) {
	for _, seed := range reconfSeeds {
		for _, viewChange := range []bool{false, true} {
			s := newRsim(t, seed, ids(4))
			c0 := Membership{Members: ids(4)}
			n5 := s.addAwaiting(ids(5), 4)
			s.crashed["n5"] = true
			res, _, _ := s.submit(simAdmin, "admin", ReconfigOp(c0, ids(5)), c0.Members)
			m, ok := DecodeReconfigResult(res)
			if !ok {
				t.Fatalf("seed %d: %q", seed, res)
			}
			for i := range 9 {
				s.submit(simAdmin, "c1", []byte(fmt.Sprintf("set k=%d", i)), m.Members)
			}
			if viewChange {
				// Without n1 the backups change view, and without n5 nothing is ordered:
				// n2..n4 are not a quorum of five.
				s.crashed["n1"] = true
				s.nextT++
				req := &Request{Gateway: simAdmin, Client: "c1", Timestamp: s.nextT, Op: []byte("set k=vc")}
				for _, id := range m.Members[1:4] {
					_ = s.reps[id].Step(FromClient, req)
					s.flush(id)
				}
				for range 300 {
					s.tick()
				}
				if r := s.reps["n2"]; r.View() == 0 || r.LastExecuted() != 10 {
					t.Fatalf("seed %d: n2 in view %d executed %d, want a view change and nothing more", seed, r.View(), r.LastExecuted())
				}
			}
			if st := s.reps["n2"].StableCheckpoint(); st <= 1 {
				t.Fatalf("seed %d: the configuration did not move past its start (stable %d)", seed, st)
			}
			s.crashed["n5"] = false
			s.nextT++
			if err := n5.Step(FromClient, &Request{Gateway: simAdmin, Client: "admin", Timestamp: s.nextT, Op: ReconfigOp(c0, ids(5))}); err != nil {
				t.Fatal(err)
			}
			s.flush("n5")
			s.settle(m)
			want := 5
			if viewChange {
				want = 4
			}
			s.write(m, "set y=2", want)
			s.settle(m)
		}
	}
}

// Two joiners, one late: when n6 catches up, n5 already vouches for the start as a
// member of the new configuration, which makes f'+1 of n6's own configuration before a
// quorum of the old one does. The start still needs the old quorum, and n6 waits for it
// instead of giving that state up.
func TestJoinerWaitsForTheOldQuorumOfTheStart(t *testing.T) {
	for _, seed := range []int64{1, 2, 3, 4, 5, 6} {
		s := newRsim(t, seed, ids(4))
		c0 := Membership{Members: ids(4)}
		s.join(c0, ids(6))
		s.crashed["n6"] = true
		res, _, _ := s.submit(simAdmin, "admin", ReconfigOp(c0, ids(6)), c0.Members)
		m, ok := DecodeReconfigResult(res)
		if !ok {
			t.Fatalf("seed %d: %q", seed, res)
		}
		for i := 0; i < 400 && !s.reps["n5"].IsMember(); i++ {
			s.tick()
		}
		if !s.reps["n5"].IsMember() {
			t.Fatalf("seed %d: n5 did not join", seed)
		}
		// Only n5 and n1 of the others answer n6 at first.
		s.crashed["n6"] = false
		s.crashed["n2"], s.crashed["n3"], s.crashed["n4"] = true, true, true
		for range 60 {
			s.tick()
		}
		s.crashed["n2"], s.crashed["n3"], s.crashed["n4"] = false, false, false
		s.settle(m)
		s.write(m, "set y=2", 6)
	}
}
