package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func recs(prefix string, n int) [][]byte {
	var out [][]byte
	for i := 0; i < n; i++ {
		out = append(out, []byte(fmt.Sprintf("%s-%d-%s", prefix, i, bytes.Repeat([]byte{'x'}, i*7))))
	}
	return out
}

func mustOpen(t *testing.T, dir string) (*Log, Opened) {
	t.Helper()
	l, op, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return l, op
}

func equal(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestAppendRewriteReopen(t *testing.T) {
	dir := t.TempDir()
	l, op := mustOpen(t, dir)
	if !op.Created || len(op.Records) != 0 {
		t.Fatalf("new log: %+v", op)
	}
	first := recs("a", 10)
	if err := l.Append(first[:4]...); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(first[4:]...); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()

	l, op = mustOpen(t, dir)
	if op.Created || !equal(op.Records, first) || op.TornBytes != 0 {
		t.Fatalf("reopened: %d records, torn %d", len(op.Records), op.TornBytes)
	}
	second := recs("b", 3)
	if err := l.Rewrite(second...); err != nil {
		t.Fatal(err)
	}
	more := recs("c", 2)
	if err := l.Append(more...); err != nil {
		t.Fatal(err)
	}
	l.Close()
	_, op = mustOpen(t, dir)
	if want := append(second, more...); !equal(op.Records, want) {
		t.Fatalf("after rewrite and append: %q", op.Records)
	}
}

func TestTornTailIsCutAndTheRestKept(t *testing.T) {
	for cut := int64(1); cut < 12; cut += 3 { // into the payload, and into the frame header
		dir := t.TempDir()
		l, _ := mustOpen(t, dir)
		all := recs("r", 5)
		if err := l.Append(all...); err != nil {
			t.Fatal(err)
		}
		size := l.Size()
		l.Close()
		path := filepath.Join(dir, logName)
		if err := os.Truncate(path, size-cut); err != nil {
			t.Fatal(err)
		}
		l, op := mustOpen(t, dir)
		if !equal(op.Records, all[:4]) || op.TornBytes == 0 {
			t.Fatalf("cut %d: %d records, torn %d", cut, len(op.Records), op.TornBytes)
		}
		// The log goes on from the last whole record.
		if err := l.Append([]byte("after")); err != nil {
			t.Fatal(err)
		}
		l.Close()
		_, op = mustOpen(t, dir)
		if !equal(op.Records, append(all[:4:4], []byte("after"))) {
			t.Fatalf("cut %d: after repair: %q", cut, op.Records)
		}
	}
}

func TestDamageIsReportedNotServed(t *testing.T) {
	corrupt := map[string]func(b []byte) []byte{
		"flipped payload bit": func(b []byte) []byte { b[headerLen+8+2] ^= 0x10; return b },
		"flipped checksum":    func(b []byte) []byte { b[headerLen+5] ^= 0x01; return b },
		"bad header":          func(b []byte) []byte { b[0] = 'X'; return b },
		"impossible length":   func(b []byte) []byte { b[headerLen+3] = 0xff; return b },
		"empty file":          func(b []byte) []byte { return nil },
	}
	for name, damage := range corrupt {
		dir := t.TempDir()
		l, _ := mustOpen(t, dir)
		if err := l.Append(recs("r", 4)...); err != nil {
			t.Fatal(err)
		}
		l.Close()
		path := filepath.Join(dir, logName)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, damage(b), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Open = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestOneProcessPerDirectory(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir)
	if _, _, err := Open(dir); err == nil {
		t.Fatal("second Open of a directory in use succeeded")
	}
	l.Close()
	l, _ = mustOpen(t, dir)
	l.Close()
}

func TestInterruptedRewriteLeavesTheOldLog(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir)
	old := recs("old", 3)
	if err := l.Append(old...); err != nil {
		t.Fatal(err)
	}
	l.Close()
	// A rewrite that crashed before its rename leaves a temporary file behind.
	if err := os.WriteFile(filepath.Join(dir, tmpName), []byte("PBFTWAL1 half"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, op := mustOpen(t, dir)
	if !equal(op.Records, old) {
		t.Fatalf("records %q", op.Records)
	}
	if _, err := os.Stat(filepath.Join(dir, tmpName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("temporary file left behind")
	}
}

func BenchmarkAppendSync(b *testing.B) {
	l, _, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rec := bytes.Repeat([]byte{1}, 512)
	b.SetBytes(int64(len(rec)))
	for i := 0; i < b.N; i++ {
		if err := l.Append(rec); err != nil {
			b.Fatal(err)
		}
		if err := l.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSyncVariants compares, in one run, ways of making a 512-byte append durable
// (issue 19): the log as it is (a preallocated file, fdatasync), the old way (a growing
// file, fsync), and on a plain file: growing with fdatasync, preallocated with fsync, and
// O_DSYNC writes into a preallocated file. Ratios to growing-fsync are what to compare.
func BenchmarkSyncVariants(b *testing.B) {
	rec := bytes.Repeat([]byte{1}, 520)
	plain := func(b *testing.B, flags int, prealloc bool, sync func(*os.File) error) {
		f, err := os.OpenFile(filepath.Join(b.TempDir(), "f"), os.O_CREATE|os.O_RDWR|flags, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if prealloc {
			if err := preallocate(f, 64<<20); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := f.WriteAt(rec, int64(i*len(rec))); err != nil {
				b.Fatal(err)
			}
			if sync != nil {
				if err := sync(f); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	fsync := func(f *os.File) error { return f.Sync() }
	b.Run("growing-fsync", func(b *testing.B) { plain(b, 0, false, fsync) })
	b.Run("log", BenchmarkAppendSync)
	b.Run("growing-fdatasync", func(b *testing.B) { plain(b, 0, false, datasync) })
	b.Run("preallocated-fsync", func(b *testing.B) { plain(b, 0, true, fsync) })
	b.Run("preallocated-fdatasync", func(b *testing.B) { plain(b, 0, true, datasync) })
	b.Run("preallocated-odsync", func(b *testing.B) { plain(b, dsync, true, nil) })
}

// The replica's writer syncs what it appended while it appends more (pbft/node): Sync
// running alongside Append is safe (the race detector checks) and loses nothing.
func TestSyncWhileAppending(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir)
	all := recs("r", 200)
	stop, synced := make(chan struct{}), make(chan error)
	go func() {
		for {
			if err := l.Sync(); err != nil {
				synced <- err
				return
			}
			select {
			case <-stop:
				synced <- nil
				return
			default:
			}
		}
	}()
	for _, r := range all {
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, op := mustOpen(t, dir)
	defer l.Close()
	if !equal(op.Records, all) || op.TornBytes != 0 {
		t.Fatalf("reopened: %d records of %d, torn %d", len(op.Records), len(all), op.TornBytes)
	}
}
