package node

import (
	"sync"
	"sync/atomic"
	"time"
)

// The durable log is written off the node's goroutine (issue 19): the loop hands each
// Ready's records to a writer goroutine and keeps stepping, and holds the Ready's
// messages until the writer reports the records durable (durable.go). The writer writes
// everything handed to it meanwhile and syncs it once: a group commit, so rounds in
// flight share one fsync instead of queueing behind one another's. etcd's raft does the
// same with its asynchronous storage writes.
//
// Nothing waits for a unit of pre-prepare records alone (votes go before them,
// pbft/durable.go): the writer appends such lazy units without syncing them, and the
// next sync, which the commit that follows them needs anyway, makes them durable too.
// So a round pays one fsync, not one for its pre-prepare and, queued behind it, one for
// its commit. When something does wait for a lazy unit, the node asks for a sync (a
// unit with no records).
//
// Two syncs may run at once (maxSyncs; issue 19): under load a sync takes 2-3 ms on the
// shared disk, and a commit record appended while one runs would otherwise wait for it
// to end and then for its own sync, 1.5 syncs on average. Appends stay in order on the
// writer's goroutine, and a sync makes durable everything written before it started, so
// whichever sync ends reports every unit appended before it began, and reports only
// move forward. A compaction waits for the syncs in flight: it replaces the file.

// durableLog is what the writer needs of the log (wal.Log); tests put a slow one in.
type durableLog interface {
	Append(records ...[]byte) error
	Sync() error
	Rewrite(records ...[]byte) error
	Close() error
}

// walUnit is one Ready's records: appended to the log, or (compact) replacing it.
type walUnit struct {
	gen     uint64
	compact bool
	lazy    bool // may stay unsynced until a later unit's sync
	recs    [][]byte
}

// WALStats counts what a replica's log writer did since the process started (its
// /metrics): syncs per second and Readies per sync say how well rounds share a sync.
type WALStats struct {
	Units          uint64  // Readies whose records were written (or syncs asked for)
	Syncs          uint64  // syncs of appended records (a rewrite syncs itself: not counted)
	Rewrites       uint64  // compactions: the log replaced whole
	SyncSeconds    float64 // time spent in those syncs
	RewriteSeconds float64 // time spent in rewrites
}

// walCounters is WALStats as the writer's goroutine updates it and others read it.
type walCounters struct{ units, syncs, rewrites, syncNanos, rewriteNanos atomic.Uint64 }

func (c *walCounters) stats() WALStats {
	if c == nil {
		return WALStats{}
	}
	return WALStats{Units: c.units.Load(), Syncs: c.syncs.Load(), Rewrites: c.rewrites.Load(),
		SyncSeconds:    time.Duration(c.syncNanos.Load()).Seconds(),
		RewriteSeconds: time.Duration(c.rewriteNanos.Load()).Seconds()}
}

// maxSyncs is how many syncs of the log may be in flight at once.
const maxSyncs = 2

// walWriter owns the log once started: only its goroutine appends to it and rewrites it;
// sync goroutines only sync it, never while it is rewritten.
type walWriter struct {
	log     durableLog
	durable func(gen uint64, err error) // called in order of gen, never concurrently
	counts  walCounters

	// dirty: appended since the last sync began; only the writer's goroutine touches it.
	dirty bool

	mu       sync.Mutex
	queue    []walUnit
	closing  bool
	syncing  int       // syncs in flight
	last     *syncJob  // the sync begun last, while in flight
	want     uint64    // the last gen that must be synced and no sync in flight covers
	reported uint64    // the last gen reported durable
	failed   bool      // a sync failed: nothing more is written or reported
	idle     sync.Cond // signalled when a sync ends
	wake     chan struct{}
	done     chan struct{}
}

// syncJob is one sync in flight; gen is the last unit it covers (it may grow while the
// sync runs, by units that appended nothing: what it syncs covers them too).
type syncJob struct{ gen uint64 }

func startWALWriter(log durableLog, durable func(gen uint64, err error)) *walWriter {
	w := &walWriter{log: log, durable: durable, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.idle.L = &w.mu
	go w.run()
	return w
}

// submit queues u; units are written in the order submitted.
func (w *walWriter) submit(u walUnit) {
	w.mu.Lock()
	w.queue = append(w.queue, u)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// stop waits for the writer to finish what it has (so the log is no longer in use) and
// end. Units it has not started are dropped: a stop is as good as a crash.
func (w *walWriter) stop() {
	w.mu.Lock()
	w.closing = true
	w.queue = nil
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
}

func (w *walWriter) run() {
	defer close(w.done)
	defer w.drain()
	var units []walUnit
	for range w.wake {
		w.mu.Lock()
		units, w.queue = w.queue, units[:0]
		closing, failed := w.closing, w.failed
		w.mu.Unlock()
		if closing || failed {
			return
		}
		if len(units) == 0 {
			continue
		}
		if err := w.write(units); err != nil {
			w.fail(units[len(units)-1].gen, err)
			return // the node stops; nothing more may be made durable out of order
		}
		clear(units)
	}
}

// drain waits for the syncs in flight to end.
func (w *walWriter) drain() {
	w.mu.Lock()
	for w.syncing > 0 {
		w.idle.Wait()
	}
	w.mu.Unlock()
}

// fail reports err once and stops every report after it.
func (w *walWriter) fail(gen uint64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.failed {
		w.failed = true
		w.durable(gen, err)
	}
}

// write appends units (after at most one rewrite) and has them synced unless they are
// all lazy. A compaction is the whole durable state, so it supersedes every unit before
// it: only the last one is written (Rewrite syncs itself, once no sync of the file it
// replaces is in flight), and what follows it is appended in one write.
func (w *walWriter) write(units []walUnit) error {
	start, lazy := 0, true
	for i, u := range units {
		if u.compact {
			start = i
		}
		lazy = lazy && u.lazy
	}
	w.counts.units.Add(uint64(len(units)))
	gen := units[len(units)-1].gen
	if units[start].compact {
		w.drain()
		t := time.Now()
		if err := w.log.Rewrite(units[start].recs...); err != nil {
			return err
		}
		w.counts.rewriteNanos.Add(uint64(time.Since(t)))
		w.counts.rewrites.Add(1)
		w.dirty = false
		w.mu.Lock()
		w.report(units[start].gen)
		w.mu.Unlock()
		start++
	}
	var recs [][]byte
	for _, u := range units[start:] {
		recs = append(recs, u.recs...)
	}
	if len(recs) > 0 {
		if err := w.log.Append(recs...); err != nil {
			return err
		}
		w.dirty = true
	}
	if lazy {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.dirty:
		w.want = gen
		w.dirty = false
		w.startSyncs()
	case w.want != 0:
		w.want = gen // a sync yet to begin covers these too
	case w.last != nil:
		w.last.gen = max(w.last.gen, gen) // nothing appended since it began
	default:
		w.report(gen) // nothing appended since the last sync ended
	}
	return nil
}

// startSyncs begins a sync of what is wanted if fewer than maxSyncs are in flight; w.mu
// is held.
func (w *walWriter) startSyncs() {
	if w.want == 0 || w.syncing >= maxSyncs || w.failed || w.closing {
		return
	}
	job := &syncJob{gen: w.want}
	w.want, w.last = 0, job
	w.syncing++
	go w.sync(job)
}

// sync runs one sync and reports what it made durable.
func (w *walWriter) sync(job *syncJob) {
	t := time.Now()
	err := w.log.Sync()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.syncing--
	if w.last == job {
		w.last = nil
	}
	defer w.idle.Broadcast()
	if err != nil {
		if !w.failed {
			w.failed = true
			w.durable(job.gen, err)
		}
		return
	}
	w.counts.syncNanos.Add(uint64(time.Since(t)))
	w.counts.syncs.Add(1)
	w.report(job.gen)
	w.startSyncs()
}

// report tells the node that every unit up to gen is durable, unless it knows; w.mu is
// held.
func (w *walWriter) report(gen uint64) {
	if gen > w.reported && !w.failed {
		w.reported = gen
		w.durable(gen, nil)
	}
}
