package wal

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// unwrittenIn reports whether any of the file's extents overlapping [from, to) is
// preallocated and not yet written (FIEMAP's FIEMAP_EXTENT_UNWRITTEN), or ok=false when
// the file system does not say.
func unwrittenIn(t *testing.T, f *os.File, from, to int64) (unwritten, ok bool) {
	t.Helper()
	const (
		fsIocFiemap      = 0xC020660B
		fiemapFlagSync   = 0x1
		extentUnwritten  = 0x800
		headerSize       = 32
		extentSize       = 56
		maxExtents       = 64
		extentFlagOffset = 40
	)
	buf := make([]byte, headerSize+maxExtents*extentSize)
	binary.LittleEndian.PutUint64(buf[0:], uint64(from))
	binary.LittleEndian.PutUint64(buf[8:], uint64(to-from))
	binary.LittleEndian.PutUint32(buf[16:], fiemapFlagSync)
	binary.LittleEndian.PutUint32(buf[24:], maxExtents)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
		return false, false
	}
	n := int(binary.LittleEndian.Uint32(buf[20:]))
	for i := 0; i < n && i < maxExtents; i++ {
		e := buf[headerSize+i*extentSize:]
		if binary.LittleEndian.Uint32(e[extentFlagOffset:])&extentUnwritten != 0 {
			return true, true
		}
	}
	return false, true
}

// An append writes zeros after its frames up to the next zeroStep boundary, so that the
// appends after it land in written blocks: their syncs then flush data and leave the
// file system's journal alone. Without that, every append into a new block of the
// preallocated (unwritten) tail changes the block map.
func TestAppendsLandInWrittenBlocks(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir)
	defer l.Close()
	if err := l.Append(recs("r", 3)...); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unwritten, ok := unwrittenIn(t, f, 0, zeroStep)
	if !ok {
		t.Skip("the file system does not report extents (FIEMAP)")
	}
	if unwritten {
		t.Fatalf("after an append of %d bytes, part of the first %d bytes is still unwritten preallocation", l.Size(), zeroStep)
	}
	if l.zeroed != zeroStep {
		t.Fatalf("zeros written up to %d, want %d", l.zeroed, zeroStep)
	}
	// The next appends stay below the boundary: no more zeros.
	if err := l.Append(recs("s", 3)...); err != nil {
		t.Fatal(err)
	}
	if l.zeroed != zeroStep {
		t.Fatalf("an append below the boundary moved it to %d", l.zeroed)
	}
	if u, _ := unwrittenIn(t, f, zeroStep, chunk); !u {
		t.Fatalf("the preallocation past %d is written: the test cannot tell", zeroStep)
	}
}
