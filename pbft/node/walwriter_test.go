package node

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// callLog records the writer's calls to it; Sync waits for the test.
type callLog struct {
	calls   chan string
	release chan error
}

func (l *callLog) Append(recs ...[]byte) error {
	l.calls <- fmt.Sprintf("append %q", recs)
	return nil
}

func (l *callLog) Sync() error {
	l.calls <- "sync"
	return <-l.release
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

func unit(gen uint64, compact bool, recs ...string) walUnit {
	u := walUnit{gen: gen, compact: compact}
	for _, r := range recs {
		u.recs = append(u.recs, []byte(r))
	}
	return u
}

// What the loop hands the writer while a sync is in flight goes out in one write and one
// sync (group commit); a compaction among it supersedes what came before it; durability
// is reported in order, once per write.
func TestWALWriterGroupsCommits(t *testing.T) {
	l := &callLog{calls: make(chan string, 16), release: make(chan error)}
	reports := make(chan durableReport, 16)
	w := startWALWriter(l, func(gen uint64, err error) { reports <- durableReport{gen, err} })
	defer w.stop()

	w.submit(unit(1, false, "a"))
	if got := []string{next(t, l.calls), next(t, l.calls)}; !slices.Equal(got, []string{`append ["a"]`, "sync"}) {
		t.Fatalf("first write: %q", got)
	}
	// While that sync is in flight, three more Readies.
	w.submit(unit(2, false, "b"))
	w.submit(unit(3, false, "c", "d"))
	w.submit(unit(4, false, "e"))
	select {
	case r := <-reports:
		t.Fatalf("durable %d reported before its sync returned", r.gen)
	default:
	}
	l.release <- nil
	if r := next(t, reports); r.gen != 1 || r.err != nil {
		t.Fatalf("after the first sync: %+v", r)
	}
	if got := []string{next(t, l.calls), next(t, l.calls)}; !slices.Equal(got, []string{`append ["b" "c" "d" "e"]`, "sync"}) {
		t.Fatalf("group commit: %q", got)
	}
	w.submit(unit(5, false, "f"))
	w.submit(unit(6, true, "snapshot"))
	w.submit(unit(7, false, "g"))
	l.release <- nil
	if r := next(t, reports); r.gen != 4 {
		t.Fatalf("after the group commit: %+v", r)
	}
	if got := []string{next(t, l.calls), next(t, l.calls), next(t, l.calls)}; !slices.Equal(got, []string{`rewrite ["snapshot"]`, `append ["g"]`, "sync"}) {
		t.Fatalf("with a compaction in the group: %q", got)
	}
	// A failed sync is reported, and the writer writes nothing after it.
	w.submit(unit(8, false, "h"))
	l.release <- errors.New("disk gone")
	if r := next(t, reports); r.gen != 7 || r.err == nil {
		t.Fatalf("failed sync reported as %+v", r)
	}
	select {
	case c := <-l.calls:
		t.Fatalf("the writer went on after a failed sync: %s", c)
	case <-w.done:
	}
	// Its counters (a replica's /metrics): every unit written, the syncs that succeeded.
	if got, want := w.counts.stats(), (WALStats{Units: 7, Syncs: 2, Rewrites: 1}); got.Units != want.Units ||
		got.Syncs != want.Syncs || got.Rewrites != want.Rewrites || got.SyncSeconds <= 0 || got.RewriteSeconds <= 0 {
		t.Errorf("counters %+v, want %+v and some time in syncs", got, want)
	}
}

// Lazy units (pre-prepare records alone) are appended and not synced: the next unit
// that is not lazy, a commit's or an empty one asking for a sync, makes them durable
// with it in one sync, and only then is anything reported.
func TestWALWriterLeavesLazyUnitsToTheNextSync(t *testing.T) {
	l := &callLog{calls: make(chan string, 16), release: make(chan error)}
	reports := make(chan durableReport, 16)
	w := startWALWriter(l, func(gen uint64, err error) { reports <- durableReport{gen, err} })
	defer w.stop()

	lazy := unit(1, false, "pp1")
	lazy.lazy = true
	w.submit(lazy)
	if got := next(t, l.calls); got != `append ["pp1"]` {
		t.Fatalf("lazy unit: %q", got)
	}
	w.submit(unit(2, false, "commit1"))
	if got := []string{next(t, l.calls), next(t, l.calls)}; !slices.Equal(got, []string{`append ["commit1"]`, "sync"}) {
		t.Fatalf("after a lazy unit: %q, want one sync", got)
	}
	l.release <- nil
	if r := next(t, reports); r.gen != 2 {
		t.Fatalf("reported %+v, want 2", r)
	}
	lazy = unit(3, false, "pp2")
	lazy.lazy = true
	w.submit(lazy)
	if got := next(t, l.calls); got != `append ["pp2"]` {
		t.Fatalf("lazy unit: %q", got)
	}
	select {
	case r := <-reports:
		t.Fatalf("a lazy unit reported durable without a sync: %+v", r)
	default:
	}
	w.submit(walUnit{gen: 3}) // the node needs gen 3 durable
	if got := next(t, l.calls); got != "sync" {
		t.Fatalf("asked for a sync: %q", got)
	}
	l.release <- nil
	if r := next(t, reports); r.gen != 3 {
		t.Fatalf("reported %+v, want 3", r)
	}
}
