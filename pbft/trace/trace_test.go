package trace

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// sinkRecorder collects what a publisher hands to its sink.
type sinkRecorder struct {
	mu      sync.Mutex
	batches int
	events  []Event
}

func (s *sinkRecorder) sink(b []byte) error {
	evs, err := Decode(b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.batches++
	s.events = append(s.events, evs...)
	s.mu.Unlock()
	return nil
}

func (s *sinkRecorder) snapshot() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Emit never blocks: with nobody publishing, the buffer fills and the rest is dropped
// and counted; what was buffered is published, in order, once the publisher runs.
func TestEmitDropsWhenFull(t *testing.T) {
	rec := &sinkRecorder{}
	p := NewPublisher(rec.sink, Options{Buffer: 4, Window: time.Hour})
	accepted := 0
	for i := 1; i <= 100; i++ {
		if p.Emit(Event{Node: "n1", Type: Send, Kind: "prepare", Seq: uint64(i)}) {
			accepted++
		}
	}
	if accepted != 4 || p.Stats().Dropped != 96 {
		t.Fatalf("accepted %d, stats %+v; want 4 accepted, 96 dropped", accepted, p.Stats())
	}
	p.Start()()
	got := rec.snapshot()
	if len(got) != 4 || p.Stats().Published != 4 {
		t.Fatalf("published %d events (%+v), want 4", len(got), p.Stats())
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.Kind != "prepare" || e.Node != "n1" {
			t.Fatalf("event %d = %+v, want prepare #%d from n1", i, e, i+1)
		}
	}
}

// The budget limits numbered events per window; unnumbered ones (view changes,
// checkpoints, summaries) always pass, and a burst goes out in few batches.
func TestBudget(t *testing.T) {
	rec := &sinkRecorder{}
	// One window of an hour at 1 event/s: a budget of 3600 numbered events.
	p := NewPublisher(rec.sink, Options{Buffer: 5000, Rate: 1, Window: time.Hour, MaxBatch: 100})
	for i := 1; i <= 3700; i++ {
		p.Emit(Event{Type: Recv, Seq: uint64(i)})
	}
	for range 3 {
		p.Emit(Event{Type: ViewChange, View: 1})
	}
	p.Start()()
	got := rec.snapshot()
	vc := 0
	for _, e := range got {
		if e.Type == ViewChange {
			vc++
		}
	}
	st := p.Stats()
	if len(got) != 3603 || vc != 3 || st.Published != 3603 || st.Dropped != 100 {
		t.Fatalf("published %d (%d view changes), stats %+v; want 3600 numbered + 3 view changes, 100 dropped", len(got), vc, st)
	}
	if rec.batches > 3603/100+2 {
		t.Fatalf("%d batches for 3603 events of at most 100", rec.batches)
	}
}

// Sampling keeps whole rounds: the numbers traced at period 2^k are the multiples of
// 2^k, so a sparser sample is contained in a denser one.
func TestSampledNests(t *testing.T) {
	p := NewPublisher(func([]byte) error { return nil }, Options{})
	sample := func(shift uint32) map[uint64]bool {
		p.shift.Store(shift)
		m := map[uint64]bool{}
		for s := uint64(1); s <= 64; s++ {
			if p.Sampled(s) {
				m[s] = true
			}
		}
		return m
	}
	all, half, eighth := sample(0), sample(1), sample(3)
	if len(all) != 64 || len(half) != 32 || len(eighth) != 8 || !p.Sampled(0) {
		t.Fatalf("sampled %d, %d, %d of 64", len(all), len(half), len(eighth))
	}
	for s := range eighth {
		if !half[s] || s%8 != 0 {
			t.Fatalf("%d sampled at 1/8 but not at 1/2", s)
		}
	}
}

// Under a flood the publisher samples more sparsely; once the flood stops it goes back
// to tracing every round.
func TestSamplingAdapts(t *testing.T) {
	p := NewPublisher(func([]byte) error { return nil }, Options{Rate: 1000, Window: 5 * time.Millisecond})
	stop := p.Start()
	defer stop()
	flood := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for s := uint64(1); ; s++ {
			select {
			case <-flood:
				return
			default:
				p.Emit(Event{Type: Recv, Seq: s})
			}
		}
	}()
	eventually(t, "sampling at 1/4 or sparser under a flood", func() bool { return p.SampleEvery() >= 4 })
	close(flood)
	wg.Wait()
	eventually(t, "every round traced after the flood", func() bool { return p.SampleEvery() == 1 })
}

// eventually polls cond until it holds, failing after 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestEventJSON(t *testing.T) {
	e := Event{T: 42, Node: "n2", Type: Recv, Kind: "commit", View: 3, Seq: 9, Digest: Short{0xde, 0xad, 0xbe, 0xef},
		From: "n1", To: "n2"}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"t":42,"node":"n2","type":"recv","kind":"commit","view":3,"seq":9,"digest":"deadbeef","from":"n1","to":"n2"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	got, err := Decode(append(append(b, "\n\n"...), b...))
	if err != nil || len(got) != 2 || !reflect.DeepEqual(got[0], e) || !reflect.DeepEqual(got[1], e) {
		t.Fatalf("decode: %+v %v", got, err)
	}
	if b, _ := json.Marshal(Event{Type: Replica}); strings.Contains(string(b), "digest") {
		t.Fatalf("zero digest written: %s", b)
	}
	if _, err := Decode([]byte(`{"t":1}` + "\nnot json")); err == nil {
		t.Fatal("bad line accepted")
	}
	var s Short
	if err := s.UnmarshalText([]byte("abc")); err == nil {
		t.Fatal("short digest accepted")
	}
}

func TestSwitch(t *testing.T) {
	for in, want := range map[string]bool{"on": true, "ON": true, "true": true, "1": true, "yes": true,
		"off": false, "false": false, "0": false, "": false, "no": false} {
		var s Switch = !Switch(want)
		if err := s.Decode(in); err != nil || bool(s) != want {
			t.Errorf("Decode(%q) = %v, %v; want %v", in, s, err, want)
		}
	}
	var s Switch
	if err := s.Decode("maybe"); err == nil {
		t.Fatal("maybe accepted")
	}
	if Switch(true).String() != "on" || Switch(false).String() != "off" {
		t.Fatal("String")
	}
}

// BenchmarkEmit is the cost a replica pays per traced event: one channel send (or a
// counted drop when the publisher is behind).
func BenchmarkEmit(b *testing.B) {
	p := NewPublisher(func([]byte) error { return nil }, Options{Rate: 1 << 30})
	stop := p.Start()
	defer stop()
	e := Event{T: 1, Node: "n1", Type: Recv, Kind: "prepare", View: 1, Seq: 7, From: "n2", To: "n1"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Seq = uint64(i)
		p.Emit(e)
	}
}
