package replica

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/bytedance/gopkg/util/gctuner"

	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft/config"
)

// gcPercent is the runtime's GOGC now.
func gcPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// With PBFT_GC_HEAP_MB, a process whose heap is far below it collects less often than
// Go's default: after a collection GOGC is raised, at most to maxGCPercent. Without it
// (0), GOGC stays Go's.
func TestGCHeapRaisesGOGCForASmallHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer gctuner.Tuning(0)

	s := config.Default()
	s.GCHeapMB = 0
	tuneProcess(s)
	runtime.GC()
	if got := gcPercent(); got != 100 {
		t.Fatalf("PBFT_GC_HEAP_MB=0: GOGC %d after a collection, want Go's 100", got)
	}

	s = config.Default() // the default threshold: a test's heap is far below it
	tuneProcess(s)
	poll.Eventually(t, 10*time.Second, "GOGC raised after a collection", func() bool {
		runtime.GC() // the tuner acts after each collection, on the finalizer goroutine
		return gcPercent() > 100
	})
	if got := gcPercent(); got > maxGCPercent {
		t.Fatalf("GOGC %d, want at most %d", got, maxGCPercent)
	}

	// A threshold below the heap in use: Go's default again, never more often.
	gctuner.Tuning(1)
	poll.Eventually(t, 10*time.Second, "GOGC back to 100 over the threshold", func() bool {
		runtime.GC()
		return gcPercent() == minGCPercent
	})
}

// Two replica.Run calls at once (a program running two replicas in one process) reach
// tuneProcess together. gctuner keeps its one tuner in an unguarded package variable (both
// may create one, and Tuning(0) stops only the one it kept), and a running tuner reads
// the GOGC bounds that SetMinGCPercent and SetMaxGCPercent write. Under the race
// detector (go test -race ./..., as the README runs every test) this failed on both.
func TestTuneProcessFromTwoGoroutines(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer gctuner.Tuning(0)

	s := config.Default()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tuneProcess(s)
		}()
	}
	wg.Wait()
}
