package bus

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// benchBroadcast4 has n1 broadcast b.N 128-byte payloads to n2..n4 and
// times until all three have handled every one. The sender keeps at most
// maxInFlight messages ahead of the slowest receiver, as a protocol with
// watermarks would, so the measurement is of sustained throughput rather
// than of how much the server can buffer.
func benchBroadcast4(b *testing.B, join func(id string, h Handler) Transport) {
	const maxInFlight = 1 << 15
	var counts [3]atomic.Int64
	target := int64(b.N)
	done := make(chan struct{}, 3)
	var sender Transport
	for i := range 4 {
		id := fmt.Sprintf("n%d", i+1)
		h := func(Message) {}
		if i > 0 {
			c := &counts[i-1]
			h = func(Message) {
				if c.Add(1) == target {
					done <- struct{}{}
				}
			}
		}
		tr := join(id, h)
		if i == 0 {
			sender = tr
		}
	}
	slowest := func() int64 {
		return min(counts[0].Load(), counts[1].Load(), counts[2].Load())
	}
	payload := make([]byte, 128)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if i%256 == 0 {
			for int64(i)-slowest() > maxInFlight {
				runtime.Gosched()
			}
		}
		if err := sender.Broadcast("prepare", payload); err != nil {
			b.Fatal(err)
		}
	}
	timeout := time.After(waitTimeout)
	for range 3 {
		select {
		case <-done:
		case <-timeout:
			b.Fatalf("receivers got %d, %d, %d of %d", counts[0].Load(), counts[1].Load(), counts[2].Load(), b.N)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(3*float64(b.N)/elapsed.Seconds(), "deliveries/s")
}

func BenchmarkNATSBroadcast4(b *testing.B) {
	s := startServer(b, 0)
	benchBroadcast4(b, func(id string, h Handler) Transport {
		nc, err := ConnectInProcess(s, id)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		tr, err := NewNATS(nc, "bench", id, RoleReplica, h)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tr.Close() })
		return tr
	})
}

func BenchmarkMemBroadcast4(b *testing.B) {
	hub := NewHub("bench")
	b.Cleanup(hub.Close)
	benchBroadcast4(b, func(id string, h Handler) Transport {
		tr, err := hub.Join(id, RoleReplica, h)
		if err != nil {
			b.Fatal(err)
		}
		return tr
	})
}
