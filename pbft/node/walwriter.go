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

// walWriter owns the log once started: only its goroutine touches it.
type walWriter struct {
	log     durableLog
	durable func(gen uint64, err error) // called on the writer's goroutine, in order
	counts  walCounters

	dirty bool // appended and not synced yet; only the writer's goroutine touches it

	mu      sync.Mutex
	queue   []walUnit
	closing bool
	wake    chan struct{}
	done    chan struct{}
}

func startWALWriter(log durableLog, durable func(gen uint64, err error)) *walWriter {
	w := &walWriter{log: log, durable: durable, wake: make(chan struct{}, 1), done: make(chan struct{})}
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
	var units []walUnit
	for range w.wake {
		w.mu.Lock()
		units, w.queue = w.queue, units[:0]
		closing := w.closing
		w.mu.Unlock()
		if closing {
			return
		}
		if len(units) == 0 {
			continue
		}
		synced, err := w.write(units)
		if synced || err != nil {
			w.durable(units[len(units)-1].gen, err)
		}
		if err != nil {
			return // the node stops; nothing more may be made durable out of order
		}
		clear(units)
	}
}

// write makes units durable with at most one rewrite and one sync, and reports whether
// it did: units that are all lazy are only appended. A compaction is the whole durable
// state, so it supersedes every unit before it: only the last one is written (Rewrite
// syncs itself), and what follows it is appended in one write and synced once.
func (w *walWriter) write(units []walUnit) (synced bool, err error) {
	start, lazy := 0, true
	for i, u := range units {
		if u.compact {
			start = i
		}
		lazy = lazy && u.lazy
	}
	w.counts.units.Add(uint64(len(units)))
	if units[start].compact {
		t := time.Now()
		if err := w.log.Rewrite(units[start].recs...); err != nil {
			return false, err
		}
		w.counts.rewriteNanos.Add(uint64(time.Since(t)))
		w.counts.rewrites.Add(1)
		w.dirty = false
		start++
	}
	var recs [][]byte
	for _, u := range units[start:] {
		recs = append(recs, u.recs...)
	}
	if len(recs) > 0 {
		if err := w.log.Append(recs...); err != nil {
			return false, err
		}
		w.dirty = true
	}
	if lazy {
		return false, nil
	}
	if w.dirty {
		t := time.Now()
		if err := w.log.Sync(); err != nil {
			return false, err
		}
		w.counts.syncNanos.Add(uint64(time.Since(t)))
		w.counts.syncs.Add(1)
		w.dirty = false
	}
	return true, nil
}
