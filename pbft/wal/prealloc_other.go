//go:build !linux

package wal

import "os"

// preallocate extends the file with zeros up to size (sparse where the system allows).
func preallocate(f *os.File, size int64) error {
	st, err := f.Stat()
	if err != nil || st.Size() >= size {
		return err
	}
	return f.Truncate(size)
}

// datasync flushes the file; without fdatasync, a full fsync.
func datasync(f *os.File) error { return f.Sync() }

const dsync = os.O_SYNC
