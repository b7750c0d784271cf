package pbft

import (
	"testing"
)

// A Byzantine new primary, with forged view-changes (more than f faulty replicas: the
// core does not check signatures, the driver does), sends a NEW-VIEW that re-issues
// numbers every replica executed with other batches. A replica must refuse to overwrite
// what it executed on this path too, as stepPrePrepare refuses it: no commit or prepare for
// the forged digests, the executed pre-prepares kept.
func TestNewViewCannotReissueExecutedNumbersWithAnotherDigest(t *testing.T) {
	for seed := int64(1); seed <= int64(seedCount(5)); seed++ {
		cfg := vcConfig(4, seed, map[int]fault{})
		cfg.requests, cfg.drop, cfg.dup = 3, 0, 0
		s := newSim(t, cfg)
		if !s.run() {
			t.Fatalf("seed %d: %d/%d answered", seed, s.done, cfg.requests)
		}
		s.converge(3000)
		victim := s.reps[0]
		if victim.lastExec == 0 || victim.lowWater != 0 {
			t.Fatalf("seed %d: replica 0 executed %d, stable checkpoint %d: nothing to re-issue", seed, victim.lastExec, victim.lowWater)
		}
		executed := map[uint64]Digest{}
		for seq := uint64(1); seq <= victim.lastExec; seq++ {
			executed[seq] = victim.log[seq].pp.Digest
		}

		forged := []*Request{{Gateway: "g", Client: "evil", Timestamp: 1, Op: []byte("forged")}}
		fd := BatchDigest(forged)
		var vcs []*ViewChange
		for _, i := range []int{1, 2, 3} {
			vcs = append(vcs, &ViewChange{NewView: 1, Replica: i, Checkpoints: []CheckpointClaim{{Seq: 0}},
				P: []Prepared{{Seq: 1, View: 0, Digest: fd}}, Q: []PrePrepared{{Seq: 1, View: 0, Digest: fd}}})
		}
		d, ok := decideNewView(victim.q, cfg.window, 1, vcs)
		if !ok || len(d.prePrepares) == 0 || d.prePrepares[0].Seq != 1 || d.prePrepares[0].Digest != fd {
			t.Fatalf("seed %d: the forged view-changes do not decide the forged batch at 1: %+v", seed, d.prePrepares)
		}
		pps := make([]*PrePrepare, len(d.prePrepares))
		for i, pp := range d.prePrepares {
			c := *pp
			if c.Digest == fd {
				c.Batch = forged
			}
			pps[i] = &c
		}
		_ = victim.Ready() // drop what the run left to send
		if err := victim.Step(1, &NewView{View: 1, Replica: 1, ViewChanges: vcs, PrePrepares: pps}); err != nil {
			t.Fatalf("seed %d: new-view: %v", seed, err)
		}
		for _, o := range victim.Ready().Messages {
			switch m := o.Msg.(type) {
			case *Commit:
				if want, ok := executed[m.Seq]; ok && m.Digest != want {
					t.Fatalf("seed %d: replica 0 committed %x at executed %d (executed %x)", seed, m.Digest[:4], m.Seq, want[:4])
				}
			case *Prepare:
				if want, ok := executed[m.Seq]; ok && m.Digest != want {
					t.Fatalf("seed %d: replica 0 prepared %x at executed %d (executed %x)", seed, m.Digest[:4], m.Seq, want[:4])
				}
			}
		}
		for seq, want := range executed {
			if got := victim.log[seq].pp.Digest; got != want {
				t.Fatalf("seed %d: executed pre-prepare %d overwritten: %x, executed %x", seed, seq, got[:4], want[:4])
			}
		}
		if victim.RefusedReissues() == 0 {
			t.Fatalf("seed %d: no refusal counted", seed)
		}
	}
}
