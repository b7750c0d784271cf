package pbft

import "testing"

// The primary counts a client as coming back from the execution of its newest request
// until its next request arrives, and for at most two ticks; a client whose next request
// came before the previous one executed is not coming back; backups count nobody.
func TestReturningClients(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		s := newSim(t, simConfig{n: 4, seed: seed})
		p := s.reps[0]
		req := func(c string, ts uint64) *Request {
			return &Request{Gateway: "g", Client: c, Timestamp: ts, Op: []byte("op")}
		}
		step := func(m *Request) {
			t.Helper()
			if err := p.Step(FromClient, m); err != nil {
				t.Fatal(err)
			}
		}
		executed := func(seq uint64) func() bool { return func() bool { return p.LastExecuted() >= seq } }
		step(req("c0", 1))
		s.flush(0)
		if got := p.Returning(); got != 0 {
			t.Fatalf("seed %d: %d returning before anything executed", seed, got)
		}
		if !s.runUntil(200, executed(1)) {
			t.Fatalf("seed %d: seq 1 not executed", seed)
		}
		if got := p.Returning(); got != 1 {
			t.Fatalf("seed %d: %d returning after c0's request executed, want 1", seed, got)
		}
		for i, r := range s.reps[1:] {
			if got := r.Returning(); got != 0 {
				t.Fatalf("seed %d: backup %d counts %d returning", seed, i+1, got)
			}
		}
		step(req("c0", 2))
		if got := p.Returning(); got != 0 {
			t.Fatalf("seed %d: %d returning after c0's next request came", seed, got)
		}
		// c1's next request comes before its first executes (a batch behind): c1 is
		// back only once that next one executed.
		step(req("c1", 1))
		s.flush(0)
		step(req("c1", 2))
		if !s.runUntil(200, executed(3)) {
			t.Fatalf("seed %d: seq 3 not executed", seed)
		}
		if got := p.Returning(); got != 2 {
			t.Fatalf("seed %d: %d returning, want 2 (c0, c1)", seed, got)
		}
		p.Tick()
		if got := p.Returning(); got != 2 {
			t.Fatalf("seed %d: forgot a returning client within a tick", seed)
		}
		p.Tick()
		if got := p.Returning(); got != 0 {
			t.Fatalf("seed %d: %d returning two ticks after, want 0", seed, got)
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
