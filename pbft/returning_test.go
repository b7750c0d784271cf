package pbft

import "testing"

// The primary counts the clients of a batch of several as coming back from the
// execution of their newest request until their next request arrives, and for at most
// two ticks; backups count nobody.
func TestReturningClients(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		s := newSim(t, simConfig{n: 4, seed: seed})
		p := s.reps[0]
		step := func(c string, ts uint64) {
			t.Helper()
			if err := p.Step(FromClient, &Request{Gateway: "g", Client: c, Timestamp: ts, Op: []byte("op")}); err != nil {
				t.Fatal(err)
			}
		}
		step("c0", 1)
		step("c1", 1)
		s.flush(0) // one batch of both
		if got := p.Returning(); got != 0 {
			t.Fatalf("seed %d: %d returning before anything executed", seed, got)
		}
		if !s.runUntil(200, func() bool { return p.LastExecuted() >= 1 }) {
			t.Fatalf("seed %d: seq 1 not executed", seed)
		}
		if got := p.Returning(); got != 2 {
			t.Fatalf("seed %d: %d returning after c0's and c1's batch executed, want 2", seed, got)
		}
		for i, r := range s.reps[1:] {
			if got := r.Returning(); got != 0 {
				t.Fatalf("seed %d: backup %d counts %d returning", seed, i+1, got)
			}
		}
		step("c0", 2)
		if got := p.Returning(); got != 1 {
			t.Fatalf("seed %d: %d returning after c0's next request came, want 1 (c1)", seed, got)
		}
		p.Tick()
		if got := p.Returning(); got != 1 {
			t.Fatalf("seed %d: forgot a returning client within a tick", seed)
		}
		p.Tick()
		if got := p.Returning(); got != 0 {
			t.Fatalf("seed %d: %d returning two ticks after, want 0", seed, got)
		}
	}
}

// One request at a time, under any client names, counts nobody: a serial stream's next
// request must not wait for the client that sent the one before it.
func TestReturningNotAfterABatchOfOne(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		s := newSim(t, simConfig{n: 4, seed: seed})
		p := s.reps[0]
		for i, c := range []string{"c0", "c1", "c0", "c1"} {
			if err := p.Step(FromClient, &Request{Gateway: "g", Client: c, Timestamp: uint64(i + 1), Op: []byte("op")}); err != nil {
				t.Fatal(err)
			}
			s.flush(0)
			if !s.runUntil(200, func() bool { return p.LastExecuted() >= uint64(i+1) }) {
				t.Fatalf("seed %d: seq %d not executed", seed, i+1)
			}
			if got := p.Returning(); got != 0 {
				t.Fatalf("seed %d: %d returning after a batch of one (%s), want 0", seed, got, c)
			}
		}
	}
}

// A client whose next request came before the previous one executed is not coming back.
func TestReturningNextBeforePrevious(t *testing.T) {
	var w returning
	w.arrived("c", 1, 0)
	w.arrived("c", 2, 0)
	w.executed("c", 1, 0)
	if w.back != 0 {
		t.Fatalf("%d back after an older request executed, want 0", w.back)
	}
	w.executed("c", 2, 0)
	if w.back != 1 {
		t.Fatalf("%d back after the newest request executed, want 1", w.back)
	}
}

// The tracked clients are bounded: past maxReturning new ones are not counted.
func TestReturningBounded(t *testing.T) {
	var w returning
	for i := 0; i < maxReturning+10; i++ {
		w.executed(string(rune(i+1)), 1, 0)
	}
	if w.back != maxReturning || len(w.clients) != maxReturning {
		t.Fatalf("%d clients, %d back; want at most %d", len(w.clients), w.back, maxReturning)
	}
	w.arrived(string(rune(1)), 2, 0)
	w.executed(string(rune(1)), 1, 0) // an older request's execution does not count it back
	if w.back != maxReturning-1 {
		t.Fatalf("%d back, want %d", w.back, maxReturning-1)
	}
}
