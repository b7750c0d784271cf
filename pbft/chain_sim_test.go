package pbft

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"strings"
	"testing"
)

// simSigner stands in for a replica's signing key: a signature is a hash of a secret
// only that id's signer uses, so a replica cannot sign as another; a test that forges
// signs with the forged ids' signers on purpose.
type simSigner struct{ id string }

func simSig(id string, msg []byte) []byte {
	h := sha256.Sum256(append([]byte("sim key of "+id+"\n"), msg...))
	return h[:]
}

func (s simSigner) Sign(msg []byte) []byte { return simSig(s.id, msg) }
func (simSigner) Verify(id string, msg, sig []byte) bool {
	return bytes.Equal(simSig(id, msg), sig)
}

// sleepThrough cuts n4 off (its process asleep: no ticks, nothing in or out) while the
// others write and run the reconfigurations to each of steps, then heals it. It returns
// the last configuration.
func sleepThrough(s *rsim, steps [][]string) Membership {
	s.t.Helper()
	m := Membership{Members: ids(4)}
	s.write(m, "set a=0", 4)
	s.crashed["n4"] = true
	for i, next := range steps {
		m = s.reconfigure(m, next)
		s.settle(m)
		live := 0
		for _, id := range m.Members {
			if !s.crashed[id] {
				live++
			}
		}
		s.write(m, "set k"+strings.Repeat("x", i)+"=1", live)
		s.settle(m)
	}
	delete(s.crashed, "n4")
	return m
}

// caughtUp runs at most limit ticks until n4 is in configuration m (a member or not, as
// m says) and, as a member, has executed what the others did and holds their state.
func (s *rsim) caughtUp(m Membership, limit int) bool {
	for range limit {
		s.tick()
		r := s.reps["n4"]
		if r.Configuration() != m.Conf || r.IsMember() != (m.Index("n4") >= 0) || r.Joining() {
			continue
		}
		if !r.IsMember() {
			return true
		}
		other := s.reps[m.Members[0]]
		if r.LastExecuted() == other.LastExecuted() && r.StateDigest() == other.StateDigest() {
			return true
		}
	}
	return false
}

// A replica that slept through three reconfigurations, and stays a member of the last,
// catches up into it from the others' transition certificates: same configuration, last
// executed number and state; then it takes part (the next write is answered by it too).
// Without certificates (unsigned) it stays behind in configuration 0.
func TestChainCatchesUpASleeperThroughThreeReconfigurations(t *testing.T) {
	steps := [][]string{ids(5), {"n1", "n2", "n3", "n4", "n6"}, {"n1", "n2", "n4", "n6"}}
	for _, seed := range reconfSeeds {
		for _, unsigned := range []bool{false, true} {
			s := newRsim(t, seed, nil)
			s.unsigned = unsigned
			for i := range ids(4) {
				s.add(ids(4), i, 0, nil)
			}
			m := sleepThrough(s, steps)
			ok := s.caughtUp(m, 1500)
			if unsigned {
				if ok || s.reps["n4"].Configuration() != 0 {
					t.Fatalf("seed %d: without certificates n4 reached configuration %d", seed, s.reps["n4"].Configuration())
				}
				continue
			}
			if !ok {
				r := s.reps["n4"]
				t.Fatalf("seed %d: n4 in configuration %d (member %v, joining %v), executed %d; the others are in %d at %d",
					seed, r.Configuration(), r.IsMember(), r.Joining(), r.LastExecuted(), m.Conf, s.reps["n1"].LastExecuted())
			}
			s.write(m, "set after=1", 4)
			s.settle(m)
			if got := len(s.reps["n1"].Chain()); got != 3 {
				t.Fatalf("seed %d: n1 keeps %d certificates, want 3", seed, got)
			}
		}
	}
}

// A replica removed while it slept learns it left: it reaches the newest configuration
// as a non-member and stops ordering.
func TestChainTellsASleeperItWasRemoved(t *testing.T) {
	steps := [][]string{ids(5), {"n1", "n2", "n3", "n5"}}
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, ids(4))
		m := sleepThrough(s, steps)
		if !s.caughtUp(m, 1500) {
			r := s.reps["n4"]
			t.Fatalf("seed %d: n4 in configuration %d (member %v)", seed, r.Configuration(), r.IsMember())
		}
		exec := s.reps["n4"].LastExecuted()
		s.write(m, "set after=1", 4)
		if r := s.reps["n4"]; r.LastExecuted() != exec || r.IsMember() {
			t.Fatalf("seed %d: n4 ordered after it left", seed)
		}
	}
}

// A sleeper restarted from its durable log (kill -9 while asleep) still catches up; and
// one that adopted a chain and then restarted resumes from it.
func TestChainSurvivesRestarts(t *testing.T) {
	steps := [][]string{ids(5), {"n1", "n2", "n3", "n4", "n6"}}
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, nil)
		s.durable = true
		for i := range ids(4) {
			s.add(ids(4), i, 0, nil)
		}
		m := sleepThrough(s, steps)
		s.restart("n4")
		s.restart("n1") // its certificates come back from its log
		if len(s.reps["n1"].Chain()) != 2 {
			t.Fatalf("seed %d: n1 restarted with %d certificates", seed, len(s.reps["n1"].Chain()))
		}
		if !s.caughtUp(m, 1500) {
			t.Fatalf("seed %d: n4 did not catch up after restarts", seed)
		}
		s.restart("n4")
		if r := s.reps["n4"]; r.Configuration() != m.Conf || !r.IsMember() || r.Joining() {
			t.Fatalf("seed %d: n4 restarted in configuration %d (member %v joining %v)", seed, r.Configuration(), r.IsMember(), r.Joining())
		}
	}
}

// forge signs link as each of signers.
func forge(l TransitionLink, signers ...string) *TransitionCert {
	c := &TransitionCert{Link: l}
	for _, id := range signers {
		c.Sigs = append(c.Sigs, Signature{Signer: id, Sig: simSig(id, linkBytes(&l))})
	}
	return c
}

// A Byzantine peer cannot move a replica into a configuration the members did not
// certify: too few signatures, signatures of non-members, a bad signature, one signer
// twice, a link that does not follow the one before, a link that skips a configuration.
// The genuine chain, relayed by anyone, is taken.
func TestChainRefusesForgeries(t *testing.T) {
	s := newRsim(t, 1, ids(4))
	m := sleepThrough(s, [][]string{ids(5), {"n1", "n2", "n3", "n4", "n6"}})
	genuine := s.reps["n1"].Chain()
	if len(genuine) != 2 {
		t.Fatalf("n1 keeps %d certificates, want 2", len(genuine))
	}
	c0 := Membership{Members: ids(4)}
	evil := TransitionLink{Ends: c0, Seq: 2, Next: []string{"n4", "x1", "x2", "x3"}, State: Digest{7}}
	badSig := forge(evil, "n1", "n2", "n3")
	badSig.Sigs[1].Sig = simSig("n2", []byte("something else"))
	broken := *genuine[1]
	broken.Link.Ends.Members = []string{"n1", "n2", "n3", "x1", "x2"}
	skip := *genuine[1]
	skip.Link.Ends.Conf = 2
	forgeries := map[string][]*TransitionCert{
		"too few signatures":     {forge(evil, "n1", "n2")},
		"non-members' signature": {forge(evil, "n1", "x1", "x2", "x3")},
		"bad signature":          {badSig},
		"one signer twice":       {forge(evil, "n1", "n2", "n2")},
		"broken link":            {genuine[0], forge(broken.Link, "n1", "n2", "n3", "x1")},
		"skipped configuration":  {genuine[0], &skip},
		"genuine then forged":    {genuine[0], genuine[1], forge(TransitionLink{Ends: m, Seq: 99, Next: []string{"x1"}}, "x1")},
	}
	r := s.reps["n4"]
	for name, certs := range forgeries {
		err := r.StepIn(0, FromAnyone, &Chain{Certs: certs})
		if err == nil || r.Configuration() != 0 || !r.IsMember() {
			t.Fatalf("%s: taken (err %v): n4 now in configuration %d", name, err, r.Configuration())
		}
		// It travels and decodes like any message.
		if _, err := Unmarshal(Marshal(&Chain{Certs: certs})); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := r.StepIn(0, FromAnyone, &Chain{Certs: genuine}); err != nil || r.Configuration() != 2 || !r.Joining() {
		t.Fatalf("the genuine chain: %v, n4 in configuration %d joining %v", err, r.Configuration(), r.Joining())
	}
	if !slices.Equal(r.Members(), m.Members) {
		t.Fatalf("n4 joins %q, want %q", r.Members(), m.Members)
	}
}

// FuzzChain: any bytes, decoded as a message and stepped into a replica of configuration
// 0 as if relayed by anyone, never panic, and move the replica only along the genuine
// chain (links its members signed): to configuration k only with the members the genuine
// link to k names. The fuzzer cannot sign as a member, so everything else it builds is a
// forgery and must change nothing.
func FuzzChain(f *testing.F) {
	c0 := Membership{Members: ids(4)}
	l0 := TransitionLink{Ends: c0, Seq: 4, Next: ids(5), State: Digest{1}}
	l1 := TransitionLink{Ends: l0.next(), Seq: 9, Next: []string{"n1", "n2", "n4", "n6"}, State: Digest{2}}
	genuine := []*TransitionCert{forge(l0, "n1", "n2", "n3"), forge(l1, "n1", "n2", "n3", "n5")}
	f.Add(Marshal(&Chain{Certs: genuine}))
	f.Add(Marshal(&Chain{Certs: genuine[:1]}))
	f.Add(Marshal(&Chain{Certs: []*TransitionCert{forge(l0, "n1", "n2")}}))
	f.Add(Marshal(&Transition{Link: l0, Signer: "n2", Sig: simSig("n2", linkBytes(&l0))}))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Unmarshal(data)
		if err != nil {
			return
		}
		s := newRsim(t, 1, ids(4))
		r := s.reps["n4"]
		_ = r.StepIn(0, FromAnyone, m)
		_ = r.Ready()
		conf := r.Configuration()
		switch {
		case conf == 0 && slices.Equal(r.Members(), c0.Members):
		case conf == 1 && slices.Equal(r.Members(), l0.Next):
		case conf == 2 && slices.Equal(r.Members(), l1.Next):
		default:
			t.Fatalf("moved to configuration %d %q", conf, r.Members())
		}
	})
}

// Transition statements lost on the way to n2 (each one the first time it is sent to
// it) are sent again: n2 still gathers the certificate, as the others do.
func TestChainStatementsLostAreSentAgain(t *testing.T) {
	for _, seed := range reconfSeeds {
		s := newRsim(t, seed, ids(4))
		lost := map[string]bool{}
		s.refuse = func(to string, m Message) bool {
			st, ok := m.(*Transition)
			if !ok || to != "n2" || lost[st.Signer] {
				return false
			}
			lost[st.Signer] = true
			return true
		}
		m := s.reconfigure(Membership{Members: ids(4)}, ids(5))
		s.settle(m)
		for range 200 {
			s.tick()
		}
		if len(lost) < 3 {
			t.Fatalf("seed %d: only %d statements were lost", seed, len(lost))
		}
		for _, id := range ids(5)[:4] {
			if got := len(s.reps[id].Chain()); got != 1 {
				t.Fatalf("seed %d: %s holds %d certificates, want 1", seed, id, got)
			}
		}
	}
}
