package client

import (
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
)

// A read's expiry comes after at least one period, readers of one half period share a
// channel, and the clock stops once nobody waits: an idle client runs no timer.
func TestReadClockExpiresAfterAPeriodAndStops(t *testing.T) {
	const period = 20 * time.Millisecond
	var k clock
	start := time.Now()
	a := k.expiry(period) // starts the clock: closed a period from now
	b, c := k.expiry(period), k.expiry(period)
	if b != c {
		t.Fatal("two readers of one half period got different channels")
	}
	select {
	case <-a:
		t.Fatal("expired at once")
	default:
	}
	<-a // ends by itself: the clock ticks
	if waited := time.Since(start); waited < period {
		t.Fatalf("expired after %v, before a period (%v)", waited, period)
	}
	<-b
	if waited := time.Since(start); waited < period {
		t.Fatalf("a later reader expired after %v, before a period (%v)", waited, period)
	}
	poll.Eventually(t, 5*time.Second, "the idle clock to stop", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return !k.ticking
	})
	// It starts again for the next reader.
	start = time.Now()
	<-k.expiry(period)
	if waited := time.Since(start); waited < period {
		t.Fatalf("after a restart, expired after %v, before a period (%v)", waited, period)
	}
}

// A reader that comes while the clock ticks for others still waits a whole period.
func TestReadClockLateReaderWaitsAPeriod(t *testing.T) {
	const period = 20 * time.Millisecond
	var k clock
	first := k.expiry(period)
	var late <-chan struct{}
	var joined time.Time
	// Join in a later period than the first reader's, while the clock runs.
	poll.Eventually(t, 5*time.Second, "a new period", func() bool {
		if ch := k.expiry(period); ch != first {
			late, joined = ch, time.Now()
			return true
		}
		return false
	})
	<-late
	if waited := time.Since(joined); waited < period {
		t.Fatalf("a reader of a later period expired after %v, before a period (%v)", waited, period)
	}
}
