package wal

import (
	"os"

	"golang.org/x/sys/unix"
)

// preallocate reserves the file's blocks up to size (fallocate, which also extends the
// file; the new range reads as zeros), so that appends within it allocate nothing.
func preallocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		return f.Truncate(size) // a file system without fallocate: a sparse extension
	}
	return err
}

// datasync flushes the file's data and what is needed to read it back, not its times.
func datasync(f *os.File) error {
	for {
		if err := unix.Fdatasync(int(f.Fd())); err != unix.EINTR {
			return err
		}
	}
}

// dsync opens a file whose writes return once their data is durable (benchmarks).
const dsync = unix.O_DSYNC
