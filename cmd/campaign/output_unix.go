//go:build unix

package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// brokenPipe reports whether f is a pipe or socket whose reader is gone: only then can
// SIGPIPE mean the output closed. The campaign's own sockets (its proxies in front of the
// replicas, its NATS and HTTP connections) raise SIGPIPE too, when a process it writes to
// was just killed; those must not stop the run.
func brokenPipe(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) == 0 {
		return false // a file or a terminal: a write to it never raises SIGPIPE
	}
	fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: 0}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0
}
