package pbft

import "testing"

// A backup behind that hears f+1 peers ahead of it in its view blames itself, not the
// primary, and keeps timing; a peer ahead that asked alone for a later view (and follows
// this one passively) must not count among them. Counted, it held the timer of a backup
// of a cluster too small to progress without that peer back in the view: the backup
// never suspected the primary, the peer's view change never gathered a quorum, and
// nothing was ever ordered again (PBFT_LONG seed 7 of TestCatchUpIgnoresALyingPeer, n=4).
func TestStatusOfAPeerInALaterViewDoesNotHoldTheTimer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		peerView uint64
		suspects bool
	}{
		{"peer ahead in this view", 0, false},
		{"peer ahead asking for the next view", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.ID, c.N, c.App = 2, 4, &chainApp{}
			r, err := NewReplica(c)
			if err != nil {
				t.Fatal(err)
			}
			req := &Request{Gateway: "g", Client: "c", Timestamp: 1, Op: []byte("op")}
			if err := r.Step(FromClient, req); err != nil {
				t.Fatal(err)
			}
			ticks := 0
			for ; ticks < 4*c.ViewChangeTicks && r.View() == 0; ticks++ {
				// The primary and peer 1 report, every tick, that they executed 5.
				for _, m := range []*StatusMsg{{View: 0, LastExecuted: 5, Replica: 0}, {View: tc.peerView, LastExecuted: 5, Replica: 1}} {
					if err := r.Step(m.Replica, m); err != nil {
						t.Fatal(err)
					}
				}
				r.Tick()
				r.Ready()
			}
			if suspected := r.View() == 1; suspected != tc.suspects {
				t.Fatalf("after %d ticks: in view %d (active %v), want suspecting the primary %v", ticks, r.View(), r.viewActive, tc.suspects)
			}
		})
	}
}
