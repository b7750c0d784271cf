package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpenSegment opens a log file of any frames followed by a preallocated zero tail:
// Open reports damage as ErrCorrupt and never crashes, and a log it opens goes on from
// the records it returned: one more record appended reads back after them, with nothing
// an unfinished write left coming back.
func FuzzOpenSegment(f *testing.F) {
	f.Add(appendFrame(appendFrame(nil, []byte("one")), []byte("two")))
	f.Add(append(appendFrame(nil, []byte("one")), appendFrame(nil, bytes.Repeat([]byte{'x'}, 600))[:300]...))
	f.Add(append(appendFrame(nil, []byte("one")), 0, 0, 0, 0, 7, 7, 7, 7))
	f.Fuzz(func(t *testing.T, frames []byte) {
		dir := t.TempDir()
		file := append(append([]byte(magic), frames...), make([]byte, 2*sector)...)
		if err := os.WriteFile(filepath.Join(dir, logName), file, 0o600); err != nil {
			t.Fatal(err)
		}
		l, op, err := Open(dir)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt or success", err)
			}
			return
		}
		if err := l.Append([]byte("after")); err != nil {
			t.Fatal(err)
		}
		l.Close()
		l, again, err := Open(dir)
		if err != nil {
			t.Fatalf("reopening after an append: %v", err)
		}
		defer l.Close()
		if want := append(op.Records[:len(op.Records):len(op.Records)], []byte("after")); !equal(again.Records, want) || again.TornBytes != 0 {
			t.Fatalf("reopened: %q torn %d, want %q", again.Records, again.TornBytes, want)
		}
	})
}
