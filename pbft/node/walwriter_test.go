package node

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// callLog records the writer's calls to it; each Sync waits for the test to end it
// through the channel it hands over on syncs.
type callLog struct {
	calls chan string
	syncs chan chan error
}

func newCallLog() *callLog {
	return &callLog{calls: make(chan string, 16), syncs: make(chan chan error, 16)}
}

func (l *callLog) Append(recs ...[]byte) error {
	l.calls <- fmt.Sprintf("append %q", recs)
	return nil
}

func (l *callLog) Sync() error {
	end := make(chan error)
	l.calls <- "sync"
	l.syncs <- end
	return <-end
}

func (l *callLog) Rewrite(recs ...[]byte) error {
	l.calls <- fmt.Sprintf("rewrite %q", recs)
	return nil
}

func (l *callLog) Close() error { return nil }

type durableReport struct {
	gen uint64
	err error
}

func next[T any](t *testing.T, ch chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("the writer did nothing for 10s")
	}
	panic("unreachable")
}

// calls reads the writer's next len(want) calls and fails unless they are want.
func calls(t *testing.T, l *callLog, what string, want ...string) {
	t.Helper()
	var got []string
	for range want {
		got = append(got, next(t, l.calls))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: calls %q, want %q", what, got, want)
	}
}

// noReport fails if the writer reported anything.
func noReport(t *testing.T, reports chan durableReport, what string) {
	t.Helper()
	select {
	case r := <-reports:
		t.Fatalf("%s: reported %+v", what, r)
	default:
	}
}

func unit(gen uint64, compact bool, recs ...string) walUnit {
	u := walUnit{gen: gen, compact: compact}
	for _, r := range recs {
		u.recs = append(u.recs, []byte(r))
	}
	return u
}

// A sync runs while the loop keeps handing the writer Readies: the next one is appended
// and a second sync begins at once (maxSyncs), so a commit record need not wait for the
// sync in flight to end; what comes while two run is appended and synced by one sync
// after them (group commit). Whichever sync ends reports every unit appended before it
// began, and reports only move forward. A compaction waits for the syncs in flight and
// supersedes what came before it.
func TestWALWriterSyncsWhileASyncRuns(t *testing.T) {
	l := newCallLog()
	reports := make(chan durableReport, 16)
	w := startWALWriter(l, func(gen uint64, err error) { reports <- durableReport{gen, err} })
	defer w.stop()

	w.submit(unit(1, false, "a"))
	calls(t, l, "first unit", `append ["a"]`, "sync")
	s1 := next(t, l.syncs)
	w.submit(unit(2, false, "b"))
	calls(t, l, "while a sync runs", `append ["b"]`, "sync")
	s2 := next(t, l.syncs)
	w.submit(unit(3, false, "c"))
	calls(t, l, "while two run", `append ["c"]`)
	w.submit(unit(4, false, "d", "e"))
	calls(t, l, "while two run", `append ["d" "e"]`)
	noReport(t, reports, "before any sync ended")

	s2 <- nil // the second sync ends first: it covers units 1 and 2
	if r := next(t, reports); r.gen != 2 || r.err != nil {
		t.Fatalf("after the second sync: %+v, want 2", r)
	}
	calls(t, l, "one sync for what waited", "sync")
	s3 := next(t, l.syncs)
	s1 <- nil // covers only what the second did
	s3 <- nil
	if r := next(t, reports); r.gen != 4 || r.err != nil {
		t.Fatalf("after the third sync: %+v, want 4 and nothing for the first", r)
	}

	w.submit(unit(5, false, "f"))
	calls(t, l, "before a compaction", `append ["f"]`, "sync")
	s5 := next(t, l.syncs)
	w.submit(unit(6, true, "snapshot"))
	select {
	case c := <-l.calls:
		t.Fatalf("the log was replaced while a sync of it ran: %s", c)
	case <-time.After(20 * time.Millisecond):
	}
	s5 <- nil
	if r := next(t, reports); r.gen != 5 {
		t.Fatalf("after the sync before the compaction: %+v", r)
	}
	calls(t, l, "compaction", `rewrite ["snapshot"]`)
	if r := next(t, reports); r.gen != 6 {
		t.Fatalf("after the compaction: %+v", r)
	}
	w.submit(unit(7, false, "g"))
	calls(t, l, "after a compaction", `append ["g"]`, "sync")
	// A failed sync is reported, and the writer writes nothing after it.
	next(t, l.syncs) <- errors.New("disk gone")
	if r := next(t, reports); r.gen != 7 || r.err == nil {
		t.Fatalf("failed sync reported as %+v", r)
	}
	w.submit(unit(8, false, "h"))
	select {
	case c := <-l.calls:
		t.Fatalf("the writer went on after a failed sync: %s", c)
	case <-w.done:
	}
	// Its counters (a replica's /metrics): every unit written, the syncs that succeeded.
	if got, want := w.counts.stats(), (WALStats{Units: 7, Syncs: 4, Rewrites: 1}); got.Units != want.Units ||
		got.Syncs != want.Syncs || got.Rewrites != want.Rewrites || got.SyncSeconds <= 0 || got.RewriteSeconds <= 0 {
		t.Errorf("counters %+v, want %+v and some time in syncs and rewrites", got, want)
	}
}

// Lazy units (pre-prepare records alone) are appended and not synced: the next unit
// that is not lazy, a commit's or an empty one asking for a sync, makes them durable
// with it in one sync, and only then is anything reported. An empty unit with nothing
// appended since the last sync is durable at once.
func TestWALWriterLeavesLazyUnitsToTheNextSync(t *testing.T) {
	l := newCallLog()
	reports := make(chan durableReport, 16)
	w := startWALWriter(l, func(gen uint64, err error) { reports <- durableReport{gen, err} })
	defer w.stop()

	lazy := unit(1, false, "pp1")
	lazy.lazy = true
	w.submit(lazy)
	calls(t, l, "lazy unit", `append ["pp1"]`)
	w.submit(unit(2, false, "commit1"))
	calls(t, l, "after a lazy unit", `append ["commit1"]`, "sync")
	next(t, l.syncs) <- nil
	if r := next(t, reports); r.gen != 2 {
		t.Fatalf("reported %+v, want 2", r)
	}
	lazy = unit(3, false, "pp2")
	lazy.lazy = true
	w.submit(lazy)
	calls(t, l, "lazy unit", `append ["pp2"]`)
	noReport(t, reports, "a lazy unit without a sync")
	w.submit(walUnit{gen: 3}) // the node needs gen 3 durable
	calls(t, l, "asked for a sync", "sync")
	next(t, l.syncs) <- nil
	if r := next(t, reports); r.gen != 3 {
		t.Fatalf("reported %+v, want 3", r)
	}
	w.submit(walUnit{gen: 4}) // nothing appended since: durable at once
	if r := next(t, reports); r.gen != 4 {
		t.Fatalf("reported %+v, want 4", r)
	}
}
