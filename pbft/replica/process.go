package replica

import (
	"runtime"
	"sync"

	"github.com/bytedance/gopkg/util/gctuner"

	"github.com/pbft-nats/pbft/pbft/config"
)

// Garbage collection's bounds while PBFT_GC_HEAP_MB is in force, as GOGC percentages:
// never more often than Go's default, never more than 6 times the live heap.
const (
	minGCPercent = 100
	maxGCPercent = 500
)

// Two replica.Run calls in one process may apply their settings at once, and gctuner is
// not safe for that: it keeps its one tuner in a package variable it does not guard
// (tuneMu), and its tuner reads the GOGC bounds without the atomics that set them, after
// every collection (so they are set once, before the first tuner: boundsOnce).
var (
	tuneMu     sync.Mutex
	boundsOnce sync.Once
)

// tuneProcess applies the settings that belong to the whole process a replica runs in:
// its threads (PBFT_MAX_PROCS) and its garbage collection (PBFT_GC_HEAP_MB).
//
// A replica's live heap is a few MiB, so at Go's default (GOGC 100) it collects every few
// MiB allocated, several times a second under load. Each collection wakes background
// workers and a sweeper that yields in a loop, on cores that replicas, NATS servers and
// gateways often share; measured, those yields were 13% of a backup's CPU profile
// (docs/performance.md, session 11). gctuner (bytedance/gopkg, made for this) raises GOGC after each collection
// so that the next starts near the threshold while the heap is below it, and leaves Go's
// default once the live heap is large.
func tuneProcess(s config.Settings) {
	if s.MaxProcs > 0 {
		runtime.GOMAXPROCS(s.MaxProcs)
	}
	if s.GCHeapMB > 0 {
		tuneMu.Lock()
		defer tuneMu.Unlock()
		boundsOnce.Do(func() {
			gctuner.SetMinGCPercent(minGCPercent)
			gctuner.SetMaxGCPercent(maxGCPercent)
		})
		gctuner.Tuning(uint64(s.GCHeapMB) << 20)
	}
}
