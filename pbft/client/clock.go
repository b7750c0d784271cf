package client

import (
	"sync"
	"time"
)

// clock ends the client's coarse waits without a timer per wait: a read's short wait on
// the read-only path, and the delay before a request is retransmitted. A timer each
// (allocated, put into and taken out of the runtime's timer heap) was a good part of a
// read's cost on the client, and of a request's. The clock ticks every period while
// anyone waits, and a waiter takes the channel closed at the end of the period after the
// current one: it waits at least one period and less than two. The exact length does not
// matter: it only decides when a read that did not agree is ordered instead, or when a
// request without an outcome goes to every replica.
type clock struct {
	mu        sync.Mutex
	cur, next chan struct{} // closed at the end of the current period, and of the next
	used      bool          // a reader took next during the current period
	ticking   bool
}

// expiry returns a channel closed between period and 2*period from now. Every caller
// passes the same period (the client's retransmitPeriod).
func (k *clock) expiry(period time.Duration) <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.ticking {
		k.ticking = true
		k.cur, k.next = make(chan struct{}), make(chan struct{})
		time.AfterFunc(period, func() { k.tick(period) })
	}
	k.used = true
	return k.next
}

// tick ends a period: the waiters of the one before it expire. It stops when nobody
// took a channel during the period that ends (nobody waits on the next one), so an idle
// client has no timer running.
func (k *clock) tick(period time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	close(k.cur)
	if !k.used {
		close(k.next) // nobody waits on it
		k.cur, k.next, k.ticking = nil, nil, false
		return
	}
	k.cur, k.next, k.used = k.next, make(chan struct{}), false
	time.AfterFunc(period, func() { k.tick(period) })
}
