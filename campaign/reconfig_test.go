package campaign

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeReconf is a fakeCluster whose membership the nemesis changes. A joiner counts as
// faulty ("joining") from its start until the nemesis's Settle says it caught up, and
// set() fails the test whenever more replicas are faulty than f' of the membership in
// force; Reconfigure checks the same right after the change.
type fakeReconf struct {
	*fakeCluster
	conf     uint64
	sizes    []int // the membership's size after each reconfiguration
	follows  [][]string
	lost     int      // Reconfigure calls to answer with an error after executing them
	refuse   int      // Reconfigure calls to fail without executing them
	retired  []string // RetireReplica calls
	minFaced int      // the smallest membership in force
}

func newFakeReconf(t *testing.T, n int) *fakeReconf {
	c := &fakeReconf{fakeCluster: newFake(t, n, 3), minFaced: n}
	c.dynamic = true
	return c
}

func (c *fakeReconf) StartJoiner(_ context.Context, id string, next []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "join "+id)
	if slices.Contains(c.ids, id) || c.state[id] != "" || !slices.Contains(next, id) {
		c.t.Errorf("joiner %s: members %v, state %q, joins %v", id, c.ids, c.state[id], next)
	}
	c.state[id] = "joining"
	return nil
}

func (c *fakeReconf) Reconfigure(_ context.Context, next []string) (uint64, []string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, fmt.Sprintf("reconfigure %v", next))
	if c.refuse > 0 {
		c.refuse--
		return c.conf, slices.Clone(c.ids), errors.New("refused")
	}
	c.ids, c.conf = slices.Clone(next), c.conf+1
	c.sizes = append(c.sizes, len(next))
	c.minFaced = min(c.minFaced, len(next))
	bad := 0
	for _, id := range next {
		if c.state[id] != "" {
			bad++
		}
	}
	if bad > fOf(len(next)) {
		c.t.Errorf("configuration %d %v: %d faulty, f'=%d: %v", c.conf, next, bad, fOf(len(next)), c.state)
	}
	if c.lost > 0 {
		c.lost--
		return c.conf, slices.Clone(c.ids), errors.New("reply lost")
	}
	return c.conf, slices.Clone(c.ids), nil
}

func (c *fakeReconf) FollowMembership(_ context.Context, members []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Equal(members, c.ids) {
		c.t.Errorf("gateway told %v, members %v", members, c.ids)
	}
	c.follows = append(c.follows, slices.Clone(members))
	return nil
}

func (c *fakeReconf) RetireReplica(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "retire "+id)
	if slices.Contains(c.ids, id) {
		c.t.Errorf("retired %s, a member of %v", id, c.ids)
	}
	c.retired = append(c.retired, id)
	delete(c.state, id)
	return nil
}

// caughtUp is the nemesis's Settle: a joiner is healthy from now on.
func (c *fakeReconf) caughtUp(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state[id] == "joining" {
		c.state[id] = ""
	}
}

// runFakeReconf runs the nemesis against c until done says so (checked every few
// milliseconds, at most 20 s: a loaded machine only slows the schedule down), then ends
// it and waits until everything healed.
func runFakeReconf(t *testing.T, c *fakeReconf, cfg NemesisConfig, done func(*Nemesis) bool) *Nemesis {
	t.Helper()
	start := time.Now()
	cfg.MinGap, cfg.MaxGap, cfg.MinHold, cfg.MaxHold = time.Millisecond, 3*time.Millisecond, time.Millisecond, 5*time.Millisecond
	cfg.Settle = func(_ context.Context, id string) error {
		c.caughtUp(id)
		return nil
	}
	cfg.SettleTimeout = time.Second
	nem := NewNemesis(c, cfg, func() time.Duration { return time.Since(start) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		nem.Run(ctx)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !done(nem) && time.Now().Before(deadline) {
		wait(context.Background(), 5*time.Millisecond) // polling, with a deadline
	}
	cancel()
	<-ran
	return nem
}

// reached reports whether the fake's membership reached size at some point and bad
// replicas were faulty at once.
func (c *fakeReconf) reached(size, bad int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.sizes, size) && c.maxBad >= bad
}

// The budget, step by step: a fault starts only below f' of the membership in force; a
// reconfiguration only when the faulty replicas plus the one it counts stay within f' of
// the membership before and after it; a grow at the largest size shrinks, and a shrink
// that would leave fewer than 4 grows.
func TestNemesisReconfigBudget(t *testing.T) {
	c := newFakeReconf(t, 7)
	nem := NewNemesis(c, NemesisConfig{Seed: 1, Faults: AllFaults, MaxMembers: 7}, func() time.Duration { return 0 })
	if !nem.reconfig || !slices.Contains(nem.cfg.Faults, FaultReplace) {
		t.Fatalf("a Reconfigurable cluster: faults %v", nem.cfg.Faults)
	}
	set := func(members, faulty int) {
		nem.members, nem.faulty, nem.reconfiguring = ReplicaIDs(members), faulty, false
	}
	for _, tc := range []struct {
		members, faulty int
		kind            FaultKind
		room            bool
		effective       FaultKind
	}{
		{7, 1, FaultKill, true, FaultKill},       // f'=2
		{7, 2, FaultKill, false, FaultKill},      // f'=2 used up
		{7, 0, FaultGrow, true, FaultShrink},     // at the largest size: 7 -> 6, f' 2 -> 1
		{7, 1, FaultShrink, false, FaultShrink},  // 1 faulty + the change > f'(6) = 1
		{7, 1, FaultReplace, true, FaultReplace}, // 1 + the joiner <= f'(7) = 2
		{6, 0, FaultGrow, true, FaultGrow},       // 6 -> 7: f' 1 -> 2, f'(6) = 1 binds
		{4, 0, FaultShrink, true, FaultGrow},     // 4 -> 3 would leave f' = 0
		{4, 1, FaultGrow, false, FaultGrow},      // the joiner plus one faulty > f'(5) = 1
		{4, 0, FaultReplace, true, FaultReplace}, // 4 -> 4
		{5, 1, FaultKill, false, FaultKill},      // f'(5) = 1
		{5, 0, FaultShrink, true, FaultShrink},   // 5 -> 4
	} {
		set(tc.members, tc.faulty)
		if got := nem.room(tc.kind); got != tc.room {
			t.Errorf("%d members, %d faulty, %s: room %v, want %v", tc.members, tc.faulty, tc.kind, got, tc.room)
		}
		if reconfigFault(tc.kind) {
			if got := nem.effective(tc.kind); got != tc.effective {
				t.Errorf("%d members, %s: does %s, want %s", tc.members, tc.kind, got, tc.effective)
			}
		}
	}
	// One reconfiguration at a time.
	set(7, 0)
	if _, ok := nem.planReconfig(FaultReplace); !ok {
		t.Fatal("no room to replace in 7 with none faulty")
	}
	if nem.room(FaultGrow) || nem.room(FaultShrink) {
		t.Fatal("room for a second reconfiguration while one is under way")
	}
	if !nem.room(FaultKill) || nem.faulty != 1 {
		t.Fatalf("the replacement counts as one faulty of f'=2: faulty %d, room for a kill %v", nem.faulty, nem.room(FaultKill))
	}
}

// A run of every fault and reconfiguration against a fake: the membership grows to 7
// (f'=2), shrinks and is replaced; the fake fails the test whenever more than f' of the
// membership in force are faulty (a joiner counts until it caught up); faults target
// only members; leavers are retired and the gateway told each new membership.
func TestNemesisReconfiguresWithinF(t *testing.T) {
	c := newFakeReconf(t, 4)
	want := []FaultKind{FaultGrow, FaultShrink, FaultReplace, FaultKill, FaultCut}
	nem := runFakeReconf(t, c, NemesisConfig{Seed: 42, Faults: AllFaults, MaxMembers: 7}, func(nem *Nemesis) bool {
		seen := map[FaultKind]bool{}
		for _, e := range nem.Events() {
			seen[e.Kind] = true
		}
		for _, k := range want {
			if !seen[k] {
				return false
			}
		}
		return c.reached(7, 2) && len(nem.Events()) >= 40
	})
	if !c.healthy() {
		t.Fatalf("not healed after Run: %v", c.state)
	}
	kinds := map[FaultKind]int{}
	for _, e := range nem.Events() {
		kinds[e.Kind]++
		if e.Error != "" {
			t.Errorf("event %+v", e)
		}
		if reconfigFault(e.Kind) && (e.Configuration == 0 || len(e.Members) < 4) {
			t.Errorf("reconfiguration without its outcome: %+v", e)
		}
		if (e.Kind == FaultGrow || e.Kind == FaultReplace) && e.Settled < e.Healed {
			t.Errorf("joiner not settled: %+v", e)
		}
	}
	for _, k := range want {
		if kinds[k] == 0 {
			t.Errorf("no %s in %v", k, kinds)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Equal(nem.Members(), c.ids) || len(c.follows) != int(c.conf) {
		t.Errorf("nemesis members %v, cluster %v; gateway told %d of %d configurations", nem.Members(), c.ids, len(c.follows), c.conf)
	}
	if !slices.Contains(c.sizes, 7) || c.minFaced < 4 || slices.Max(c.sizes) > 7 {
		t.Errorf("sizes %v (smallest %d): want 7 reached (f'=2), never below 4 or above 7", c.sizes, c.minFaced)
	}
	if c.maxBad != 2 {
		t.Errorf("at most %d faulty at once: want the schedule to reach f'=2", c.maxBad)
	}
	for _, id := range c.retired {
		if slices.Contains(c.ids, id) {
			t.Errorf("retired member %s", id)
		}
	}
}

// A reconfiguration executed whose answer was lost is followed all the same (the
// cluster says what is in force); one refused retires its joiner and changes nothing.
func TestNemesisReconfigErrors(t *testing.T) {
	c := newFakeReconf(t, 4)
	c.lost, c.refuse = 1, 0
	nem := runFakeReconf(t, c, NemesisConfig{Seed: 3, Faults: []FaultKind{FaultGrow}, MaxMembers: 5},
		func(nem *Nemesis) bool { return len(nem.Events()) >= 2 })
	ev := nem.Events()
	if len(ev) < 2 || ev[0].Error == "" || ev[0].Configuration != 1 || len(ev[0].Members) != 5 {
		t.Fatalf("events %+v: want the first, executed with its answer lost, recorded with its error and configuration 1", ev)
	}
	if !slices.Equal(nem.Members(), c.ids) {
		t.Fatalf("nemesis members %v, cluster %v", nem.Members(), c.ids)
	}

	c = newFakeReconf(t, 4)
	c.refuse = 1
	nem = runFakeReconf(t, c, NemesisConfig{Seed: 3, Faults: []FaultKind{FaultReplace}},
		func(nem *Nemesis) bool { return len(nem.Events()) >= 1 })
	ev = nem.Events()
	if len(ev) == 0 || ev[0].Error == "" || len(ev[0].Members) != 4 || !slices.Equal(ev[0].Members, fakeIDs(4)) {
		t.Fatalf("events %+v: want the refused one recorded with the membership unchanged", ev)
	}
	if len(c.retired) == 0 || c.retired[0] != "replica-4" {
		t.Fatalf("retired %v: want the refused joiner replica-4 retired", c.retired)
	}
}

// fakeIDs are a fake's initial ids n1..n<k>.
func fakeIDs(k int) []string {
	ids := make([]string, k)
	for i := range ids {
		ids[i] = fmt.Sprintf("n%d", i+1)
	}
	return ids
}

// The seed fixes the schedule with reconfigurations too (f'=1 throughout, so one
// fault at a time): the same kinds, targets and memberships in the same order.
func TestNemesisReconfigScheduleIsSeeded(t *testing.T) {
	schedule := func(seed uint64) []string {
		c := newFakeReconf(t, 4)
		var clock atomic.Int64
		nem := NewNemesis(c, NemesisConfig{Seed: seed, Faults: AllFaults, MaxMembers: 6,
			MinGap: time.Millisecond, MaxGap: 2 * time.Millisecond, MinHold: time.Millisecond, MaxHold: 2 * time.Millisecond,
			Settle: func(_ context.Context, id string) error { c.caughtUp(id); return nil }, SettleTimeout: time.Second},
			func() time.Duration { return time.Duration(clock.Add(1)) })
		var out []string
		for _, e := range firstEvents(t, nem, 15) {
			out = append(out, fmt.Sprintf("%s:%s:%v", e.Kind, e.Target, e.Members))
		}
		return out
	}
	a, b, c := schedule(1), schedule(1), schedule(2)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different schedules:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("different seeds, same schedule: %v", a)
	}
	if !slices.ContainsFunc(a, func(s string) bool {
		return strings.HasPrefix(s, "grow:") || strings.HasPrefix(s, "replace:")
	}) {
		t.Fatalf("no reconfiguration in %v", a)
	}
}

// Lead faults happen whatever the timing: with the fault phase over before Run starts,
// the nemesis still injects them, in order, and nothing else.
func TestNemesisLeadFaultsStartAfterThePhaseEnds(t *testing.T) {
	c := newFakeReconf(t, 4)
	start := time.Now()
	nem := NewNemesis(c, NemesisConfig{Seed: 1, Faults: AllFaults, Lead: []FaultKind{FaultGrow, FaultKill, FaultReplace}, MaxMembers: 6,
		MinGap: time.Millisecond, MaxGap: 2 * time.Millisecond, MinHold: time.Millisecond, MaxHold: 2 * time.Millisecond,
		Settle: func(_ context.Context, id string) error { c.caughtUp(id); return nil }, SettleTimeout: time.Second},
		func() time.Duration { return time.Since(start) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	nem.Run(ctx)
	var kinds []FaultKind
	for _, e := range nem.Events() {
		kinds = append(kinds, e.Kind)
		if e.Error != "" {
			t.Errorf("%+v", e)
		}
	}
	if want := []FaultKind{FaultGrow, FaultKill, FaultReplace}; !slices.Equal(kinds, want) {
		t.Fatalf("faults %v, want %v", kinds, want)
	}
	if !slices.Equal(c.sizes, []int{5, 5}) {
		t.Fatalf("memberships of sizes %v, want a grow to 5 and a replace", c.sizes)
	}
}
