package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The file is longer than its frames (preallocated); the zeros after them are the end.
func TestPreallocatedZeroTailIsTheEnd(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir)
	all := recs("r", 20)
	if err := l.Append(all...); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	size := l.Size()
	l.Close()
	st, err := os.Stat(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() < chunk || st.Size() <= size {
		t.Fatalf("file of %d bytes for %d bytes of frames: not preallocated", st.Size(), size)
	}
	l, op := mustOpen(t, dir)
	defer l.Close()
	if !equal(op.Records, all) || op.TornBytes != 0 || l.Size() != size {
		t.Fatalf("reopened: %d records, torn %d, size %d (want %d)", len(op.Records), op.TornBytes, l.Size(), size)
	}
	if err := l.Append(nil); err == nil {
		t.Fatal("an empty record was appended: its frame would read as the end")
	}
}

// A crash during an unsynced append into the preallocated tail: of a write of two
// frames, a sector of the first never reached the disk while the second did. The log
// ends before the first; what the write left is zeroed, so that a later, shorter append
// cannot end where the old second frame starts and bring it back.
func TestTornWriteInPreallocatedSegment(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir)
	synced := recs("s", 3)
	if err := l.Append(synced...); err != nil {
		t.Fatal(err)
	}
	start := l.Size()
	first := bytes.Repeat([]byte{'a'}, 3*sector)
	second := []byte("second")
	if err := l.Append(first, second); err != nil {
		t.Fatal(err)
	}
	l.Close()
	path := filepath.Join(dir, logName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lost := (start/sector + 2) * sector // a whole sector inside the first frame
	clear(b[lost : lost+sector])
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	l, op := mustOpen(t, dir)
	if !equal(op.Records, synced) || op.TornBytes == 0 {
		t.Fatalf("after the torn write: %d records, torn %d", len(op.Records), op.TornBytes)
	}
	// A frame as long as the first's header plus its payload up to the old second frame,
	// less its own header: it ends exactly where the second frame began.
	filler := bytes.Repeat([]byte{'f'}, len(first))
	if err := l.Append(filler); err != nil {
		t.Fatal(err)
	}
	l.Close()
	_, op = mustOpen(t, dir)
	if want := append(synced[:3:3], filler); !equal(op.Records, want) {
		t.Fatalf("after a new append: %d records (the lost write's second frame came back?)", len(op.Records))
	}
}

// A damaged frame without a zero sector is damage, not a torn write, also inside the
// preallocated segment.
func TestDamageInsidePreallocatedSegment(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir)
	if err := l.Append(recs("r", 3)...); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(bytes.Repeat([]byte{'x'}, 2000)); err != nil {
		t.Fatal(err)
	}
	end := l.Size()
	l.Close()
	path := filepath.Join(dir, logName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[end-1000] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
}

func TestTornFindsAZeroSector(t *testing.T) {
	full := bytes.Repeat([]byte{1}, 3*sector)
	withHole := bytes.Clone(full)
	clear(withHole[sector-100 : 2*sector-100]) // a whole sector of the file at offset 100
	tail := bytes.Clone(full)
	clear(tail[len(tail)-100:]) // the piece of the last sector the frame covers (from 1536 to 1636)
	for _, c := range []struct {
		name    string
		payload []byte
		want    bool
	}{{"whole", full, false}, {"a zero sector", withHole, true}, {"a zero last piece", tail, true}} {
		if got := torn(100-8, []byte{1, 2, 3, 4, 5, 6, 7, 8}, c.payload); got != c.want {
			t.Errorf("%s: torn = %v", c.name, got)
		}
	}
}
