package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// values is what s holds, key to value.
func values(s *Store) map[string]string {
	m := make(map[string]string, len(s.m))
	for k, e := range s.m {
		m[k] = e.value
	}
	return m
}

// sortedEncoding is the canonical encoding computed the plain way: every key of m,
// sorted afresh.
func sortedEncoding(m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := binary.AppendUvarint([]byte(snapshotMagic), uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(m[k])))
		b = append(b, m[k]...)
	}
	return b
}

// TestSnapshotKeepsOrderAcrossEncodings checks the incremental key order against a
// fresh sort after every few operations: keys set, deleted, set again and deleted again
// between encodings, a restore in the middle, and a churn long enough to compact the
// keys noted since the last encoding.
func TestSnapshotKeepsOrderAcrossEncodings(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		s := New()
		space := 5 + r.IntN(300)
		for step := range 3000 {
			k := fmt.Sprintf("k%d", r.IntN(space))
			switch r.IntN(8) {
			case 0, 1, 2, 3:
				s.Execute(fmt.Appendf(nil, "set %s=%d", k, step))
			case 4, 5:
				s.Execute(fmt.Appendf(nil, "del %s", k))
			case 6:
				if got, want := s.Snapshot(), sortedEncoding(values(s)); !bytes.Equal(got, want) {
					t.Fatalf("seed %d step %d: snapshot differs from a fresh sort", seed, step)
				}
			default:
				if step == 1500 {
					restored := New()
					if err := restored.Restore(s.Snapshot()); err != nil {
						t.Fatalf("seed %d: restore: %v", seed, err)
					}
					s = restored
				}
			}
		}
		if got, want := s.Digest(), New().digestOf(sortedEncoding(values(s))); got != want {
			t.Fatalf("seed %d: digest differs from a fresh sort's", seed)
		}
	}
	// Churn on one key with no encoding in between stays bounded.
	s := New()
	for range 10000 {
		s.Execute([]byte("set a=1"))
		s.Execute([]byte("del a"))
	}
	if n := len(s.order.fresh); n > 1024+1 {
		t.Fatalf("%d keys noted for one churned key", n)
	}
	if got, want := s.Snapshot(), sortedEncoding(values(s)); !bytes.Equal(got, want) {
		t.Fatal("snapshot after churn differs from a fresh sort")
	}
}

func (s *Store) digestOf(b []byte) [32]byte {
	r := New()
	if err := r.Restore(b); err != nil {
		panic(err)
	}
	return r.Digest()
}

// BenchmarkSnapshotGrowing encodes a store of 20,000 keys after every 128 new ones, as
// checkpoints do while a workload adds keys.
func BenchmarkSnapshotGrowing(b *testing.B) {
	ops := make([][]byte, 20000)
	for i := range ops {
		ops[i] = fmt.Appendf(nil, "set key%06d=v", (i*7919)%len(ops))
	}
	b.ReportAllocs()
	for b.Loop() {
		s := New()
		for i, op := range ops {
			s.Execute(op)
			if i%128 == 127 {
				s.Digest()
			}
		}
	}
}

// TestValuesLetGoAreFreed: a value overwritten, or deleted, before an encoding must
// not stay reachable after it. The key order once kept the first key string, a
// substring of the first set's operation, and with it the first value; and it once
// truncated the keys noted since an encoding without clearing them.
func TestValuesLetGoAreFreed(t *testing.T) {
	for _, c := range []struct {
		name, then, what string
	}{
		{"overwrite", "set k%02d=v", "after overwriting 32 values of 1 MiB with 1 byte each"},
		{"delete", "del k%02d", "with an empty store"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := New()
			big := strings.Repeat("x", 1<<20)
			for i := range 32 {
				s.Execute(fmt.Appendf(nil, "set k%02d=%s", i, big))
				if c.name == "delete" {
					s.Execute(fmt.Appendf(nil, c.then, i))
				}
			}
			s.Digest()
			if c.name == "overwrite" {
				for i := range 32 {
					s.Execute(fmt.Appendf(nil, c.then, i))
				}
				s.Digest()
			}
			big = ""
			if mib := liveHeapMiB(); mib > 16 {
				t.Errorf("heap %d MiB %s", mib, c.what)
			}
			runtime.KeepAlive(s)
		})
	}
}

// liveHeapMiB is the heap in use after a collection, in MiB.
func liveHeapMiB() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc >> 20
}

// TestDistinctChurnStaysBounded: keys set and deleted once each between encodings (not
// one key again and again) must not grow the noted keys without bound either.
func TestDistinctChurnStaysBounded(t *testing.T) {
	s := New()
	for i := range 10000 {
		s.Execute(fmt.Appendf(nil, "set k%d=1", i))
		s.Execute(fmt.Appendf(nil, "del k%d", i))
	}
	if n := len(s.order.fresh); n > 2*s.Len()+1024+1 {
		t.Errorf("%d keys noted for an empty store", n)
	}
}

// TestCompactionKeepsTheKeyBeingAdded: the set that triggers a compaction of the keys
// noted since the last encoding keeps its own key (the compaction once ran before the
// map held it and dropped it, so the snapshot lacked a key the store held).
func TestCompactionKeepsTheKeyBeingAdded(t *testing.T) {
	s := New()
	for i := range 1024 {
		s.Execute(fmt.Appendf(nil, "set k%d=1", i))
		s.Execute(fmt.Appendf(nil, "del k%d", i))
	}
	s.Execute([]byte("set x=1")) // the 1025th noted key: compacts
	if got, want := s.Snapshot(), sortedEncoding(values(s)); !bytes.Equal(got, want) {
		t.Fatalf("snapshot differs from a fresh sort: %q, want %q", got, want)
	}
	r := New()
	if err := r.Restore(s.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if got := r.Execute([]byte("get x")); string(got) != "1" {
		t.Fatalf("restored store: get x = %q, want 1", got)
	}
}
