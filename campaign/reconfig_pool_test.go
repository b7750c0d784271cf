package campaign

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// With a finite pool of fresh ids (NATS auth: the replica users auth.conf has beyond the
// initial ones), a grow or replace with none left shrinks, and at 4 members with none
// left no reconfiguration can happen.
func TestNemesisFreshIDsBound(t *testing.T) {
	c := newFakeReconf(t, 4)
	nem := NewNemesis(c, NemesisConfig{Seed: 1, Faults: AllFaults, MaxMembers: 6, FreshIDs: []string{"replica-4"}},
		func() time.Duration { return 0 })
	set := func(members, fresh int) {
		nem.members, nem.fresh, nem.faulty, nem.reconfiguring = ReplicaIDs(members), fresh, 0, false
	}
	for _, tc := range []struct {
		members, fresh int
		kind, want     FaultKind
	}{
		{4, 0, FaultGrow, FaultGrow},
		{4, 0, FaultShrink, FaultGrow},
		{4, 0, FaultReplace, FaultReplace},
		{5, 1, FaultGrow, FaultShrink}, // replica-4 taken: nothing can join
		{5, 1, FaultReplace, FaultShrink},
		{5, 1, FaultShrink, FaultShrink},
		{4, 1, FaultGrow, ""}, // nothing can join, and 4 cannot shrink
		{4, 1, FaultShrink, ""},
		{4, 1, FaultReplace, ""},
	} {
		set(tc.members, tc.fresh)
		if got := nem.effective(tc.kind); got != tc.want {
			t.Errorf("%d members, %d fresh ids taken, %s: does %q, want %q", tc.members, tc.fresh, tc.kind, got, tc.want)
		}
		if room, over := nem.room(tc.kind), nem.reconfigsOver(tc.kind); (tc.want == "") != over || (over && room) {
			t.Errorf("%d members, %d taken, %s: room %v, over %v", tc.members, tc.fresh, tc.kind, room, over)
		}
	}
	set(5, 0)
	if p, ok := nem.planReconfig(FaultReplace); !ok || p.join != "replica-4" {
		t.Fatalf("plan %+v, %v: want replica-4 to join", p, ok)
	}
	if nem.reconfigsOver(FaultGrow) {
		t.Fatal("over while a reconfiguration is under way (it may change the membership)")
	}
}

// A run takes the fresh ids in order, each once, then reconfigures no more (it shrinks
// while it can, then says why reconfigurations ended) and goes on with the other faults;
// leading reconfigurations that cannot happen end too instead of waiting for good.
func TestNemesisUsesUpItsFreshIDs(t *testing.T) {
	pool := []string{"replica-4", "replica-5"}
	c := newFakeReconf(t, 4)
	nem := runFakeReconf(t, c, NemesisConfig{Seed: 7, Faults: []FaultKind{FaultGrow, FaultReplace, FaultShrink, FaultKill},
		MaxMembers: 6, FreshIDs: pool}, func(nem *Nemesis) bool {
		if nem.ReconfigEnd() == "" {
			return false
		}
		ev := nem.Events()
		return len(ev) > 0 && ev[len(ev)-1].Kind == FaultKill && ev[len(ev)-1].Start > 0
	})
	var joined []string
	for _, e := range nem.Events() {
		if e.Error != "" {
			t.Errorf("event %+v", e)
		}
		if i := strings.Index(e.Target, "+"); reconfigFault(e.Kind) && i >= 0 {
			joined = append(joined, e.Target[i+1:])
		}
	}
	if !slices.Equal(joined, pool) {
		t.Fatalf("joiners %v, want the pool %v in order, each once", joined, pool)
	}
	end := nem.ReconfigEnd()
	if !strings.Contains(end, "replica-4 replica-5") || len(nem.Members()) != 4 {
		t.Fatalf("end %q, members %v: want reconfigurations ended at 4 members with the pool named", end, nem.Members())
	}
	kills := 0
	for _, e := range nem.Events() {
		if e.Kind == FaultKill {
			kills++
		}
	}
	if kills == 0 {
		t.Fatalf("events %+v: want kills after reconfigurations ended", nem.Events())
	}

	// Only reconfigurations, led by more joins than there are fresh ids, with the fault
	// phase already over: Run returns once they cannot happen.
	c = newFakeReconf(t, 4)
	start := time.Now()
	nem = NewNemesis(c, NemesisConfig{Seed: 1, Faults: []FaultKind{FaultGrow}, Lead: []FaultKind{FaultGrow, FaultGrow, FaultGrow},
		MaxMembers: 6, FreshIDs: pool[:1], MinGap: time.Millisecond, MaxGap: 2 * time.Millisecond, MinHold: time.Millisecond,
		MaxHold: 2 * time.Millisecond, Settle: func(_ context.Context, id string) error { c.caughtUp(id); return nil },
		SettleTimeout: time.Second}, func() time.Duration { return time.Since(start) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		nem.Run(ctx)
	}()
	select {
	case <-ran:
	case <-time.After(20 * time.Second):
		t.Fatal("Run still waiting for room for a reconfiguration that cannot happen")
	}
	var kinds []FaultKind
	for _, e := range nem.Events() {
		kinds = append(kinds, e.Kind)
	}
	if want := []FaultKind{FaultGrow, FaultShrink}; !slices.Equal(kinds, want) || nem.ReconfigEnd() == "" {
		t.Fatalf("faults %v (end %q): want a grow with replica-4, a shrink, then the end", kinds, nem.ReconfigEnd())
	}
}
