package loadgen

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// measured is what drive saw.
type measured struct {
	lat      []time.Duration // of the successful requests
	readLat  []time.Duration // of the successful reads
	writeLat []time.Duration // of the other successful requests
	errors   int
	elapsed  time.Duration
}

func (m measured) rps() float64 {
	if m.elapsed <= 0 {
		return 0
	}
	return float64(len(m.lat)) / m.elapsed.Seconds()
}

// drive runs clients goroutines, each calling do in a loop (k = 1, 2, ... its own count)
// until d has passed since the start; do says whether its request was a read. Requests in flight at the end are waited for and
// counted; elapsed runs until the last one returns. Every second it writes a progress line
// to progress, if not nil.
func drive(ctx context.Context, clients int, d time.Duration, progress io.Writer, label string, do func(ctx context.Context, c int, k uint64) (bool, error)) measured {
	start := time.Now()
	deadline := start.Add(d)
	lats := make([][]time.Duration, clients)
	isRead := make([][]bool, clients)
	errs := make([]int, clients)
	var win window
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := uint64(1); ctx.Err() == nil && time.Now().Before(deadline); k++ {
				t0 := time.Now()
				read, err := do(ctx, c, k)
				if err != nil {
					if ctx.Err() == nil {
						errs[c]++
						win.errors.Add(1)
					}
					continue
				}
				lat := time.Since(t0)
				lats[c] = append(lats[c], lat)
				isRead[c] = append(isRead[c], read)
				if progress != nil {
					win.add(lat)
				}
			}
		}()
	}
	stop := make(chan struct{})
	var pwg sync.WaitGroup
	if progress != nil {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			last := start
			report := func(now time.Time) {
				l, e := win.take()
				secs := now.Sub(last).Seconds()
				last = now
				if secs <= 0 {
					return
				}
				p := percentiles(l)
				line := fmt.Sprintf("%s%3.0fs  %6.0f req/s  p50 %.1fms  p99 %.1fms", label, now.Sub(start).Seconds(), float64(len(l))/secs, p.P50, p.P99)
				if e > 0 {
					line += fmt.Sprintf("  %d errors", e)
				}
				fmt.Fprintln(progress, line)
			}
			for {
				select {
				case <-stop:
					// The requests since the last line, if they are a good part of a second.
					if now := time.Now(); now.Sub(last) >= 100*time.Millisecond {
						report(now)
					}
					return
				case now := <-t.C:
					report(now)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	pwg.Wait()
	m := measured{elapsed: elapsed}
	for c := range clients {
		m.lat = append(m.lat, lats[c]...)
		for i, lat := range lats[c] {
			if isRead[c][i] {
				m.readLat = append(m.readLat, lat)
			} else {
				m.writeLat = append(m.writeLat, lat)
			}
		}
		m.errors += errs[c]
	}
	return m
}

// window collects the latencies of the current progress second.
type window struct {
	mu     sync.Mutex
	lat    []time.Duration
	errors atomic.Int64
}

func (w *window) add(d time.Duration) {
	w.mu.Lock()
	w.lat = append(w.lat, d)
	w.mu.Unlock()
}

func (w *window) take() ([]time.Duration, int64) {
	w.mu.Lock()
	l := w.lat
	w.lat = nil
	w.mu.Unlock()
	return l, w.errors.Swap(0)
}

// percentiles returns nearest-rank percentiles of lat, in milliseconds; lat is sorted.
func percentiles(lat []time.Duration) Latencies {
	if len(lat) == 0 {
		return Latencies{}
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(lat)))) - 1
		i = max(0, min(i, len(lat)-1))
		return float64(lat[i]) / float64(time.Millisecond)
	}
	return Latencies{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: at(1)}
}
