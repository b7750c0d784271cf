package pbft

import (
	"fmt"
	"testing"
)

// A joiner that was not running when the administrator's reconfiguration executed (it
// never got the request) asks the members it will run with; one answers with the
// admission it kept, and the joiner joins: a member of configuration 1 with the others'
// state, answering the next write. With the answers lost it waits for good, as before.
// Variant: the cluster reconfigured once more (n6 in) before the joiner started; the
// answer carries the certificate of configuration 1's end too, and the joiner goes
// straight to configuration 2.
func TestJoinerStartedAfterItsAdmissionExecuted(t *testing.T) {
	for _, seed := range reconfSeeds {
		for _, variant := range []string{"admitted", "unanswered", "admitted, then another reconfiguration"} {
			s := newRsim(t, seed, ids(4))
			if variant == "unanswered" {
				s.refuse = func(_ string, m Message) bool { _, ok := m.(*AskAdmission); return ok }
			}
			c0 := Membership{Members: ids(4)}
			s.write(c0, "set x=1", 4)
			res, _, _ := s.submit(simAdmin, "admin", ReconfigOp(c0, ids(5)), c0.Members)
			m, ok := DecodeReconfigResult(res)
			if !ok || m.Conf != 1 {
				t.Fatalf("seed %d: %q", seed, res)
			}
			for i := range 9 {
				s.submit(simAdmin, "c1", []byte(fmt.Sprintf("set k=%d", i)), m.Members)
			}
			want := 5
			if variant == "admitted, then another reconfiguration" {
				next := append(ids(5), "n6")
				s.add(next, 5, 2, &m)
				res, _, _ := s.submit(simAdmin, "admin", ReconfigOp(m, next), m.Members)
				if m, ok = DecodeReconfigResult(res); !ok || m.Conf != 2 {
					t.Fatalf("seed %d: %q", seed, res)
				}
				s.crashed["n5"] = true // not running: settle skips it
				s.settle(m)
				s.write(m, "set z=1", 5)
				delete(s.crashed, "n5")
				want = 6
			}
			n5 := s.addAwaiting(ids(5), 4) // started only now, told only ids(5)
			if variant == "unanswered" {
				for range 1000 {
					s.tick()
				}
				if !n5.Joining() || n5.IsMember() {
					t.Fatalf("seed %d: n5 joined without its admission", seed)
				}
				continue
			}
			s.settle(m)
			if r := s.reps["n5"]; r.Configuration() != m.Conf || !r.IsMember() || r.Joining() {
				t.Fatalf("seed %d: %s: n5 in configuration %d member %v joining %v", seed, variant, r.Configuration(), r.IsMember(), r.Joining())
			}
			s.write(m, "set y=2", want)
			s.settle(m)
		}
	}
}
