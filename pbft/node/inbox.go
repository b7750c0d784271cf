package node

import (
	"sync"

	"github.com/pbft-nats/pbft/bus"
)

// item is one event for the node's goroutine: a bus message or a function to run there.
type item struct {
	msg bus.Message
	fn  func()
}

// inbox is an unbounded FIFO with a wake-up channel. Producers (bus callbacks, API calls)
// never block; the node drains everything queued at once, which is what lets requests that
// arrive together share one pre-prepare.
type inbox struct {
	mu    sync.Mutex
	items []item
	wake  chan struct{}
}

func (q *inbox) init() { q.wake = make(chan struct{}, 1) }

func (q *inbox) push(it item) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// drain moves every queued item into dst.
func (q *inbox) drain(dst []item) []item {
	q.mu.Lock()
	dst = append(dst, q.items...)
	for i := range q.items {
		q.items[i] = item{}
	}
	q.items = q.items[:0]
	q.mu.Unlock()
	return dst
}
