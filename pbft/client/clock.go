package client

import (
	"sync"
	"time"
)

// clock ends the client's coarse waits without a timer per wait: a read's short wait on
// the read-only path, and the delay before a request is retransmitted. A timer each
// (allocated, put into and taken out of the runtime's timer heap) was a good part of a
// read's cost on the client, and of a request's. While anyone waits the clock ticks
// every half period, and a waiter takes the channel closed at the end of the half period
// two after the current one: it waits at least one period and at most one and a half
// (exactly one when the clock starts for it). The exact length does not matter: it only
// decides when a read that did not agree is ordered instead, or when a request without
// an outcome goes to every replica.
type clock struct {
	mu sync.Mutex
	// chans are closed at the end of the current half period, of the next and of the
	// one after it.
	chans   [3]chan struct{}
	left    int // ticks until the last channel handed out is closed
	ticking bool
}

// expiry returns a channel closed between period and 1.5*period from now. Every caller
// passes the same period (the client's retransmitPeriod).
func (k *clock) expiry(period time.Duration) <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.ticking {
		k.ticking = true
		for i := range k.chans {
			k.chans[i] = make(chan struct{})
		}
		k.left = 2
		time.AfterFunc(period/2, func() { k.tick(period / 2) })
		return k.chans[1] // the clock starts now: two ticks are exactly a period
	}
	k.left = 3
	return k.chans[2]
}

// tick ends a half period: the waiters whose channel it is expire. It stops when the
// last channel handed out is closed, so an idle client has no timer running.
func (k *clock) tick(half time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	close(k.chans[0])
	if k.left--; k.left == 0 {
		k.chans, k.ticking = [3]chan struct{}{}, false // nobody holds the others
		return
	}
	k.chans = [3]chan struct{}{k.chans[1], k.chans[2], make(chan struct{})}
	time.AfterFunc(half, func() { k.tick(half) })
}
