// Package wal is the durable log of a replica: an append-only file of checksummed
// records in PBFT_DATA_DIR, synced before the replica sends anything that depends on
// them, and rewritten whole (atomically) when the replica compacts its state at a stable
// checkpoint.
//
// Why a file of our own rather than an embedded database: the replica's durable state is
// a short sequence of records that is only ever appended to, read back whole at start,
// and replaced whole at a checkpoint. That needs append, fsync and atomic rename, and a
// checksum per record so damage is found, not served; a B-tree store (bbolt) adds page
// management we would not use and panics on some corrupted pages instead of reporting
// them.
//
// On disk: "log" holds an 8-byte magic, then frames of [length uint32 LE][CRC-32C of the
// payload uint32 LE][payload], then zeros: the file is preallocated ahead of its frames
// (segment.go), so that an append overwrites blocks the file already has and its sync
// flushes data, not the file's size and block map. A record is never empty, so a frame
// header of zeros is the end of the log. What a crash of the machine in the middle of an
// unsynced append leaves is cut off and reported (Opened.TornBytes), as etcd's WAL
// does: a frame cut short at the end of the file, or a frame that fails its checksum and
// holds a whole sector (of 512 bytes, at the file's offsets) of zeros, which a write the
// disk did not finish leaves in a preallocated file. A frame that fails its checksum
// otherwise, a bad magic or an impossible length is damage: Open fails with ErrCorrupt.
package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// ErrCorrupt reports a damaged log.
var ErrCorrupt = errors.New("wal: damaged log")

const (
	magic     = "PBFTWAL1"
	headerLen = 8
	// MaxRecord bounds one record (a checkpoint snapshot is the largest).
	MaxRecord = 1 << 30
	logName   = "log"
	tmpName   = "log.tmp"
	lockName  = "LOCK"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Log is an open durable log. Sync may run while Append does (the replica's writer syncs
// what it appended while it appends more); nothing else is safe for concurrent use.
type Log struct {
	dir   string
	f     *os.File
	lock  *os.File
	buf   []byte
	size  int64 // where the next frame goes: the end of the last one
	alloc int64 // the file's length, preallocated past size
}

// Opened describes what Open found.
type Opened struct {
	Records [][]byte
	// TornBytes is how many bytes of an incomplete last frame were cut off.
	TornBytes int64
	// Created is true when there was no log yet.
	Created bool
}

// Open opens (creating if needed) the log in dir and reads it back. It holds an
// exclusive lock on dir until Close, so two replicas never share one.
func Open(dir string) (*Log, Opened, error) {
	var op Opened
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, op, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, op, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, op, fmt.Errorf("wal: %s is in use by another process: %w", dir, err)
	}
	l := &Log{dir: dir, lock: lock}
	fail := func(err error) (*Log, Opened, error) {
		l.Close()
		return nil, Opened{}, err
	}
	_ = os.Remove(filepath.Join(dir, tmpName)) // an interrupted rewrite; the old log stands
	path := filepath.Join(dir, logName)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := l.rewrite(nil); err != nil {
			return fail(err)
		}
		op.Created = true
		return l, op, nil
	}
	if err != nil {
		return fail(err)
	}
	l.f = f
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	recs, good, err := readAll(f, path, st.Size())
	if err != nil {
		return fail(err)
	}
	torn, err := nonZeroAfter(f, good, st.Size())
	if err != nil {
		return fail(err)
	}
	if torn > 0 {
		// Zero what an unfinished append left, or a later append shorter than it could
		// end just where an old frame of it starts, and that frame would read back.
		op.TornBytes = torn
		if err := f.Truncate(good); err != nil {
			return fail(err)
		}
		st, err = f.Stat()
		if err != nil {
			return fail(err)
		}
	}
	l.size, l.alloc = good, st.Size()
	if err := l.reserve(0); err != nil {
		return fail(err)
	}
	if torn > 0 || l.alloc != st.Size() {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	op.Records = recs
	return l, op, nil
}

// readAll reads every complete frame of the file of size bytes; good is the offset after
// the last one.
func readAll(f *os.File, path string, size int64) (recs [][]byte, good int64, err error) {
	r := bufio.NewReaderSize(f, 1<<16)
	head := make([]byte, headerLen)
	if _, err := io.ReadFull(r, head); err != nil || string(head) != magic {
		return nil, 0, fmt.Errorf("%w: %s does not start with the log header", ErrCorrupt, path)
	}
	good = headerLen
	var fh [8]byte
	for i := 0; ; i++ {
		if _, err := io.ReadFull(r, fh[:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return recs, good, nil // clean end, or a torn frame header
			}
			return nil, 0, err
		}
		n := binary.LittleEndian.Uint32(fh[0:4])
		sum := binary.LittleEndian.Uint32(fh[4:8])
		if n == 0 && sum == 0 {
			return recs, good, nil // the preallocated zeros after the last frame
		}
		if n > MaxRecord {
			return nil, 0, fmt.Errorf("%w: %s record %d at offset %d has impossible length %d", ErrCorrupt, path, i, good, n)
		}
		if int64(n) > size-good-int64(len(fh)) {
			return recs, good, nil // torn payload: the file ends inside it
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return recs, good, nil // torn payload
			}
			return nil, 0, err
		}
		if n == 0 || crc32.Checksum(payload, castagnoli) != sum {
			if torn(good, fh[:], payload) {
				return recs, good, nil
			}
			return nil, 0, fmt.Errorf("%w: %s record %d at offset %d fails its checksum", ErrCorrupt, path, i, good)
		}
		recs = append(recs, payload)
		good += int64(len(fh)) + int64(n)
	}
}

func appendFrame(dst, rec []byte) []byte {
	var fh [8]byte
	binary.LittleEndian.PutUint32(fh[0:4], uint32(len(rec)))
	binary.LittleEndian.PutUint32(fh[4:8], crc32.Checksum(rec, castagnoli))
	return append(append(dst, fh[:]...), rec...)
}

// Append writes records at the end of the log, in one write, without syncing. An empty
// record is refused: a frame of zeros is the end of the log.
func (l *Log) Append(records ...[]byte) error {
	l.buf = l.buf[:0]
	for _, rec := range records {
		if len(rec) > MaxRecord {
			return fmt.Errorf("wal: record of %d bytes exceeds %d", len(rec), MaxRecord)
		}
		if len(rec) == 0 {
			return errors.New("wal: empty record")
		}
		l.buf = appendFrame(l.buf, rec)
	}
	if len(l.buf) == 0 {
		return nil
	}
	if err := l.reserve(int64(len(l.buf))); err != nil {
		return err
	}
	n, err := l.f.WriteAt(l.buf, l.size)
	l.size += int64(n)
	if cap(l.buf) > 1<<20 {
		l.buf = nil // a large snapshot passed through: do not keep its buffer
	}
	return err
}

// Sync makes everything appended durable. Within the preallocated segment that is the
// data alone (fdatasync on Linux).
func (l *Log) Sync() error { return datasync(l.f) }

// Size is the log file's length in bytes.
func (l *Log) Size() int64 { return l.size }

// Rewrite replaces the whole log by records, atomically: after a crash the log is either
// the old one or the new one, complete and synced.
func (l *Log) Rewrite(records ...[]byte) error { return l.rewrite(records) }

func (l *Log) rewrite(records [][]byte) error {
	tmp := filepath.Join(l.dir, tmpName)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	size := int64(headerLen)
	_, err = w.WriteString(magic)
	var frame []byte
	for _, rec := range records {
		if err != nil {
			break
		}
		if len(rec) == 0 {
			err = errors.New("wal: empty record")
			break
		}
		frame = appendFrame(frame[:0], rec)
		_, err = w.Write(frame)
		size += int64(len(frame))
	}
	if err == nil {
		err = w.Flush()
	}
	alloc := segmentSize(size)
	if err == nil {
		err = preallocate(f, alloc)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	path := filepath.Join(l.dir, logName)
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	nf, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f, l.size, l.alloc = nf, size, alloc
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close closes the log and releases the directory.
func (l *Log) Close() error {
	var err error
	if l.f != nil {
		err = l.f.Close()
		l.f = nil
	}
	if l.lock != nil {
		l.lock.Close() // closing the descriptor releases the flock
		l.lock = nil
	}
	return err
}
