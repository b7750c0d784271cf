//go:build unix

package loadgen

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system) the process has used so far, 0 if unknown:
// on a shared machine requests per CPU-second vary far less than requests per second.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
