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

// A checkpoint whose messages were lost becomes stable anyway: each replica resends its
// own checkpoints that are not stable at it to a peer whose status shows it below them.
// Here the checkpoint at 8 is stable only at replica 0 (1 and 2 lost each other's
// messages), which truncated 1 to 8; replica 3, cut off until then, needs the state at 8
// (replica 0's claim alone is not f+1) or a quorum of commits for 1 to 8 (only 1 and 2
// still have theirs). Without the resend nothing changes once the cluster is idle, and
// it never catches up (as in PBFT_LONG seed 105 of TestViewChangePrimaryCrashesMidViewChange).
func TestLostCheckpointsAreResent(t *testing.T) {
	for seed := int64(1); seed <= int64(seedCount(5)); seed++ {
		healed := false
		s := newSim(t, simConfig{n: 4, seed: seed, requests: 12, maxDelay: 2, checkpoint: 8, window: 16, batchMax: 1,
			partition: func(tick, from, to int) bool { return !healed && (from == 3 || to == 3) },
			refuse: func(to int, m Message) bool {
				if _, ok := m.(*PrePrepare); ok && to == 3 {
					return true // as a joiner's driver refusing requests not tagged for it
				}
				_, cp := m.(*Checkpoint)
				return !healed && cp && (to == 1 || to == 2) && m.(*Checkpoint).Replica == 3-to
			}})
		if !s.run() {
			t.Fatalf("seed %d: requests not answered: %s", seed, s.describe())
		}
		s.runUntil(100, func() bool { return false }) // idle
		if s.reps[0].lowWater != 8 || s.reps[1].lowWater != 0 || s.reps[2].lowWater != 0 {
			t.Fatalf("seed %d: want the checkpoint at 8 stable at replica 0 only: %s", seed, s.describe())
		}
		healed = true
		if !s.runUntil(300, s.sameExecution) {
			t.Fatalf("seed %d: the replica behind did not catch up in 300 ticks: %s", seed, s.describe())
		}
		for i, r := range s.reps {
			if r.lowWater != 8 {
				t.Fatalf("seed %d: replica %d's stable checkpoint is %d, want 8: %s", seed, i, r.lowWater, s.describe())
			}
		}
		s.checkSafety()
	}
}
