package bus

import (
	"sync"
	"sync/atomic"
)

// inbox is an endpoint's unbounded FIFO of deliveries plus the one goroutine
// that drains it into the Handler. Unbounded because a bounded queue would
// have to block the producer (a Send, which may itself run inside a handler:
// deadlock) or drop (which stalls the protocol until a timeout); PBFT's
// watermarks bound how much a correct peer can have outstanding anyway.
// One goroutine per endpoint is what makes handler calls serialised.
type inbox struct {
	h     Handler
	stats *counters

	mu      sync.Mutex
	cond    sync.Cond // signalled on the first push into an empty queue, and on close
	pending []Message
	closed  atomic.Bool // written under mu; read without it between handler calls

	done chan struct{} // closed when run returns
}

// maxKeptBatch bounds the buffer run keeps between batches, so one burst
// does not pin its memory forever.
const maxKeptBatch = 4096

func newInbox(h Handler, stats *counters) *inbox {
	q := &inbox{h: h, stats: stats, done: make(chan struct{})}
	q.cond.L = &q.mu
	go q.run()
	return q
}

// push appends m; it never blocks on the handler. After close it drops m
// and reports false.
func (q *inbox) push(m Message) bool {
	q.mu.Lock()
	if q.closed.Load() {
		q.mu.Unlock()
		q.stats.dropped.Add(1)
		return false
	}
	wasEmpty := len(q.pending) == 0
	q.pending = append(q.pending, m)
	q.mu.Unlock()
	if wasEmpty {
		q.cond.Signal()
	}
	return true
}

// run delivers in FIFO order until close. It takes the whole queue at once
// and swaps in its spare buffer, so the lock is held for O(1) per batch and
// never while the handler runs.
func (q *inbox) run() {
	defer close(q.done)
	var batch []Message
	for {
		q.mu.Lock()
		for len(q.pending) == 0 && !q.closed.Load() {
			q.cond.Wait()
		}
		if q.closed.Load() {
			q.mu.Unlock()
			return
		}
		batch, q.pending = q.pending, batch[:0]
		q.mu.Unlock()

		for i := range batch {
			// Checked per message so that Close stops delivery promptly
			// instead of after the rest of a large batch.
			if q.closed.Load() {
				q.stats.dropped.Add(uint64(len(batch) - i))
				return
			}
			m := batch[i]
			batch[i] = Message{} // let the payload be collected once handled
			q.stats.received.Add(1)
			q.h(m)
		}
		if cap(batch) > maxKeptBatch {
			batch = nil
		}
	}
}

// close stops delivery, drops what is still queued and waits until the
// handler is no longer running. It must not be called from the handler.
func (q *inbox) close() {
	q.mu.Lock()
	if !q.closed.Load() {
		q.closed.Store(true)
		q.stats.dropped.Add(uint64(len(q.pending)))
		q.pending = nil
		q.cond.Signal()
	}
	q.mu.Unlock()
	<-q.done
}
