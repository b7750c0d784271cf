package wal

import (
	"fmt"
	"io"
	"os"
)

// The log file is preallocated (issue 19): an fsync of an append that grows a file also
// commits its new length and blocks to the file system's journal, which every process
// on the disk shares; an append into blocks the file already has makes its sync
// (fdatasync) flush the data alone. Growth comes in chunks, each costing one such
// metadata commit.

// chunk is the unit the file is preallocated in.
const chunk = 4 << 20

// sector is the unit a disk writes whole: a frame that fails its checksum and has a whole
// sector of zeros was being written when the machine stopped.
const sector = 512

// segmentSize is the file length for size bytes of frames: the next whole chunk.
func segmentSize(size int64) int64 { return (size/chunk + 1) * chunk }

// reserve makes the file long enough for n more bytes after the last frame.
func (l *Log) reserve(n int64) error {
	if l.size+n <= l.alloc {
		return nil
	}
	alloc := segmentSize(l.size + n)
	if err := preallocate(l.f, alloc); err != nil {
		return fmt.Errorf("wal: preallocating %s to %d bytes: %w", l.dir, alloc, err)
	}
	l.alloc = alloc
	return nil
}

// torn reports whether the frame at offset off (header fh, then payload) holds a whole
// sector of zeros, as the preallocated tail does where a write did not land. The pieces
// at either end that cover part of a sector count too. The price, as in etcd's WAL:
// damage that zeroes a whole sector of a frame, or turns a length into one that reaches
// the zero tail, reads as a torn end and drops the records after it (Open reports the
// bytes cut, which the node logs), where a growing file would report ErrCorrupt.
func torn(off int64, fh, payload []byte) bool {
	zero := true // the piece of the current sector read so far is zero
	pos := off
	for _, part := range [][]byte{fh, payload} {
		for _, b := range part {
			if pos%sector == 0 && pos != off {
				if zero {
					return true
				}
				zero = true
			}
			if b != 0 {
				zero = false
			}
			pos++
		}
	}
	return zero
}

// nonZeroAfter reports how many bytes from good to the last non-zero byte before size
// the file holds: what an unfinished append left after the last whole frame.
func nonZeroAfter(f *os.File, good, size int64) (int64, error) {
	buf := make([]byte, 1<<16)
	var last int64 = -1
	for off := good; off < size; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		for i := n - 1; i >= 0; i-- {
			if buf[i] != 0 {
				last = off + int64(i)
				break
			}
		}
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if last < 0 {
		return 0, nil
	}
	return last + 1 - good, nil
}
