package kv

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// step is one operation and the exact result it must produce.
type step struct{ op, want string }

func run(t *testing.T, s *Store, steps []step) {
	t.Helper()
	for _, st := range steps {
		got := s.Execute([]byte(st.op))
		if got == nil {
			t.Fatalf("Execute(%q) = nil", st.op)
		}
		if string(got) != st.want {
			t.Fatalf("Execute(%q) = %q, want %q", st.op, got, st.want)
		}
	}
}

func TestExecute(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		len   int
	}{
		{"get absent", []step{{"get x", Absent}}, 0},
		{"set then get", []step{{"set x=1", "OK"}, {"get x", "1"}}, 1},
		{"overwrite", []step{{"set x=1", "OK"}, {"set x=2", "OK"}, {"get x", "2"}}, 1},
		{"empty value", []step{{"set x=", "OK"}, {"get x", ""}}, 1},
		{"value contains =", []step{{"set x=a=b==", "OK"}, {"get x", "a=b=="}}, 1},
		{"value contains spaces and newline", []step{{"set x= a b\n", "OK"}, {"get x", " a b\n"}}, 1},
		{"key with spaces is not trimmed", []step{{"set  k =v", "OK"}, {"get  k ", "v"}, {"get k", Absent}, {"get  k", Absent}}, 1},
		{"unicode key and value", []step{{"set ключ=значение 😀", "OK"}, {"get ключ", "значение 😀"}}, 1},
		{"get with = in key", []step{{"set a=b", "OK"}, {"get a=b", Absent}}, 1},
		{"del present", []step{{"set x=1", "OK"}, {"del x", "OK"}, {"get x", Absent}}, 0},
		{"del absent", []step{{"del x", "OK"}}, 0},
		{"del only named key", []step{{"set x=1", "OK"}, {"set y=2", "OK"}, {"del x", "OK"}, {"get y", "2"}}, 1},

		{"empty op", []step{{"", "error: empty operation"}}, 0},
		{"unknown verb", []step{{"frobnicate", `error: unknown operation "frobnicate"`}}, 0},
		{"unknown verb with arg", []step{{"frobnicate x=1", `error: unknown operation "frobnicate"`}}, 0},
		{"verb case-sensitive", []step{{"SET x=1", `error: unknown operation "SET"`}, {"Get x", `error: unknown operation "Get"`}}, 0},
		{"tab is not a separator", []step{{"get\tx", `error: unknown operation "get\tx"`}}, 0},
		{"leading space", []step{{" get x", `error: unknown operation ""`}}, 0},
		{"set missing key", []step{{"set", "error: set needs a key"}}, 0},
		{"get missing key", []step{{"get", "error: get needs a key"}}, 0},
		{"del missing key", []step{{"del", "error: del needs a key"}}, 0},
		{"set empty arg", []step{{"set ", "error: set needs KEY=VALUE: no '=' found"}}, 0},
		{"set without =", []step{{"set x", "error: set needs KEY=VALUE: no '=' found"}}, 0},
		{"set empty key", []step{{"set =v", "error: empty key"}}, 0},
		{"get empty key", []step{{"get ", "error: empty key"}}, 0},
		{"del empty key", []step{{"del ", "error: empty key"}}, 0},
		{"invalid utf-8", []step{{"set x=\xff", "error: operation is not valid UTF-8"}, {"get x", Absent}}, 0},
		{"invalid utf-8 verb", []step{{"\xc3", "error: operation is not valid UTF-8"}}, 0},
		// A lone surrogate from JSON ("\ud800") arrives as a 3-byte sequence: text.
		{"lone surrogate", []step{{"set x=a\xed\xa0\x80b", "OK"}, {"get x", "a\xed\xa0\x80b"}}, 1},
		{"surrogate cut short", []step{{"set x=\xed\xa0", "error: operation is not valid UTF-8"}}, 0},
		{"long unknown verb is truncated", []step{{strings.Repeat("é", 100),
			`error: unknown operation "` + strings.Repeat("é", 32) + `"...`}}, 0},
		{"errors leave state unchanged", []step{{"set x=1", "OK"}, {"set x", "error: set needs KEY=VALUE: no '=' found"},
			{"set =2", "error: empty key"}, {"nope", `error: unknown operation "nope"`}, {"get x", "1"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			run(t, s, tt.steps)
			if s.Len() != tt.len {
				t.Errorf("Len() = %d, want %d", s.Len(), tt.len)
			}
		})
	}
}

func TestErrorsDoNotChangeDigest(t *testing.T) {
	s := New()
	run(t, s, []step{{"set a=1", "OK"}, {"set b=2", "OK"}})
	before := s.Digest()
	for _, op := range []string{"", "x", "set", "set a", "set =1", "get ", "del ", "DEL a", "set a=\xff", "get a", "get zz", "del zz"} {
		if r := s.Execute([]byte(op)); len(r) == 0 {
			t.Fatalf("Execute(%q) = %q", op, r)
		}
	}
	if s.Digest() != before {
		t.Fatal("errors, reads and deletes of absent keys changed the digest")
	}
}

// The result must belong to the caller: mutating it (or the op) must not
// affect the store.
func TestResultAndOpNotAliased(t *testing.T) {
	s := New()
	op := []byte("set k=value")
	s.Execute(op)
	copy(op, "XXXXXXXXXXX")
	r := s.Execute([]byte("get k"))
	copy(r, "zzzzz")
	if got := s.Execute([]byte("get k")); string(got) != "value" {
		t.Fatalf("get k = %q, want %q", got, "value")
	}
}

func TestEmptyDigestFixed(t *testing.T) {
	// Pinned (SHA-256 of "pbft-kv/1\n\x00") so an accidental format change
	// is noticed: every replica and stored checkpoint depends on it.
	const want = "29ab7b931527848494a108b5fa34df83666326905a1359d7300f99729e2d49a5"
	got := New().Digest()
	if hex.EncodeToString(got[:]) != want {
		t.Fatalf("empty digest = %x, want %s", got, want)
	}
	s := New()
	run(t, s, []step{{"set x=1", "OK"}, {"del x", "OK"}})
	if s.Digest() != got {
		t.Fatal("store emptied by del has a different digest from a new store")
	}
}

// randomOps returns a reproducible op sequence over a small key space so that
// overwrites and deletes of present keys are common.
func randomOps(seed uint64, n int) [][]byte {
	r := rand.New(rand.NewPCG(seed, seed))
	ops := make([][]byte, n)
	for i := range ops {
		k := fmt.Sprintf("k%d", r.IntN(50))
		switch r.IntN(10) {
		case 0, 1, 2, 3, 4:
			ops[i] = fmt.Appendf(nil, "set %s=%d", k, r.IntN(1000))
		case 5, 6:
			ops[i] = fmt.Appendf(nil, "del %s", k)
		case 7, 8:
			ops[i] = fmt.Appendf(nil, "get %s", k)
		default:
			ops[i] = fmt.Appendf(nil, "bogus %s", k)
		}
	}
	return ops
}

func TestDeterminism(t *testing.T) {
	for seed := range uint64(20) {
		ops := randomOps(seed, 2000)
		a, b := New(), New()
		for _, op := range ops {
			ra, rb := a.Execute(op), b.Execute(op)
			if !bytes.Equal(ra, rb) {
				t.Fatalf("seed %d: results differ for %q: %q vs %q", seed, op, ra, rb)
			}
		}
		if a.Digest() != b.Digest() {
			t.Fatalf("seed %d: same ops, different digests", seed)
		}
		if !bytes.Equal(a.Snapshot(), b.Snapshot()) {
			t.Fatalf("seed %d: same ops, different snapshots", seed)
		}
	}
}

func TestDifferentStatesDifferentDigests(t *testing.T) {
	states := [][]string{
		{},
		{"set a=1"},
		{"set a=2"},
		{"set a="},
		{"set b=1"},
		{"set a=1", "set b=2"},
		{"set a=1", "set b="},
		// Length prefixes keep these apart: naive concatenation would not.
		{"set a=bc"},
		{"set ab=c"},
		{"set a=b", "set c=d"},
		{"set a=bcd"},
	}
	seen := map[[32]byte]int{}
	for i, ops := range states {
		s := New()
		for _, op := range ops {
			s.Execute([]byte(op))
		}
		d := s.Digest()
		if j, ok := seen[d]; ok {
			t.Errorf("states %v and %v have the same digest", states[j], ops)
		}
		seen[d] = i
	}

	// The same state reached by different histories has the same digest.
	a, b := New(), New()
	run(t, a, []step{{"set x=1", "OK"}, {"set y=2", "OK"}})
	run(t, b, []step{{"set y=0", "OK"}, {"set z=9", "OK"}, {"set x=1", "OK"}, {"del z", "OK"}, {"set y=2", "OK"}})
	if a.Digest() != b.Digest() {
		t.Error("equal states reached by different histories have different digests")
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	for seed := range uint64(10) {
		a := New()
		for _, op := range randomOps(seed, 500) {
			a.Execute(op)
		}
		snap := a.Snapshot()
		b := New()
		b.Execute([]byte("set old=state")) // must be replaced, not merged
		if err := b.Restore(snap); err != nil {
			t.Fatalf("seed %d: Restore: %v", seed, err)
		}
		if a.Digest() != b.Digest() || a.Len() != b.Len() {
			t.Fatalf("seed %d: restored state differs", seed)
		}
		// The restored store must keep working identically.
		for _, op := range randomOps(seed+100, 200) {
			if ra, rb := a.Execute(op), b.Execute(op); !bytes.Equal(ra, rb) {
				t.Fatalf("seed %d: after restore, %q: %q vs %q", seed, op, ra, rb)
			}
		}
		if a.Digest() != b.Digest() {
			t.Fatalf("seed %d: diverged after restore", seed)
		}
	}
}

// Digest streams in chunks; it must still equal the hash of Snapshot for
// states larger than the chunk size, including values larger than a chunk.
func TestDigestLargeState(t *testing.T) {
	s := New()
	for i := range 3000 {
		s.Execute(fmt.Appendf(nil, "set key%05d=%s", i, strings.Repeat("v", i%40)))
	}
	s.Execute([]byte("set big=" + strings.Repeat("x", 100<<10)))
	r := New()
	if err := r.Restore(s.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if r.Digest() != s.Digest() || sha256.Sum256(s.Snapshot()) != s.Digest() {
		t.Fatal("digest does not match snapshot hash")
	}
}

func TestRestoreRejects(t *testing.T) {
	good := New()
	run(t, good, []step{{"set a=1", "OK"}, {"set b=22", "OK"}})
	snap := good.Snapshot()

	enc := func(parts ...string) []byte { return []byte(snapshotMagic + strings.Join(parts, "")) }
	cases := map[string][]byte{
		"nil":                 nil,
		"garbage":             []byte("hello, world"),
		"header only":         []byte(snapshotMagic),
		"wrong version":       []byte(strings.Replace(string(snap), "/1", "/2", 1)),
		"trailing byte":       append(bytes.Clone(snap), 0),
		"count too large":     enc("\x05", "\x01a\x011"),
		"count overflow":      enc("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
		"huge count":          enc("\xff\xff\xff\xff\x0f"),
		"non-minimal count":   enc("\x80\x00"),
		"non-minimal length":  enc("\x01", "\x81\x00a", "\x011"),
		"key length too long": enc("\x01", "\x09a", "\x011"),
		"value truncated":     enc("\x01", "\x01a", "\x05ab"),
		"missing value":       enc("\x01", "\x01a"),
		"empty key":           enc("\x01", "\x00", "\x011"),
		"key with =":          enc("\x01", "\x03a=b", "\x011"),
		"unsorted keys":       enc("\x02", "\x01b\x011", "\x01a\x011"),
		"duplicate keys":      enc("\x02", "\x01a\x011", "\x01a\x012"),
		"invalid utf-8 key":   enc("\x01", "\x01\xff", "\x011"),
		"invalid utf-8 value": enc("\x01", "\x01a", "\x01\xff"),
	}
	for i := range len(snap) {
		cases[fmt.Sprintf("truncated to %d", i)] = snap[:i]
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			s := New()
			s.Execute([]byte("set keep=me"))
			before := s.Digest()
			err := s.Restore(b)
			if err == nil {
				t.Fatalf("Restore(%q) succeeded", b)
			}
			if !errors.Is(err, ErrBadSnapshot) || !strings.HasPrefix(err.Error(), "kv: ") {
				t.Fatalf("Restore error %q does not wrap ErrBadSnapshot", err)
			}
			if s.Digest() != before {
				t.Fatal("failed Restore changed the state")
			}
		})
	}
}

func TestRestoreEmpty(t *testing.T) {
	s := New()
	s.Execute([]byte("set a=1"))
	if err := s.Restore(New().Snapshot()); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 0 || s.Digest() != New().Digest() {
		t.Fatal("restoring an empty snapshot did not empty the store")
	}
}

// Execute is on the replica's hot path; pin its allocation counts so a
// regression is noticed.
func TestExecuteAllocs(t *testing.T) {
	s := New()
	s.Execute([]byte("set k=v"))
	cases := []struct {
		op   string
		max  float64
		what string
	}{
		{"set k=v2", 2, "one string for key+value, one result"},
		{"get k", 1, "result copy"},
		{"get absent", 1, "result"},
		{"del absent", 1, "result"},
	}
	for _, c := range cases {
		op := []byte(c.op)
		got := testing.AllocsPerRun(100, func() { s.Execute(op) })
		if got > c.max {
			t.Errorf("Execute(%q): %v allocs, want <= %v (%s)", c.op, got, c.max, c.what)
		}
	}
}

func FuzzExecute(f *testing.F) {
	for _, op := range []string{"set a=b", "get a", "del a", "", "set", "set =", "set a", "get ", "x y", "set a=\xff", "\xff"} {
		f.Add([]byte(op))
	}
	f.Fuzz(func(t *testing.T, op []byte) {
		s := New()
		s.Execute([]byte("set a=1"))
		before := s.Digest()
		r := s.Execute(op)
		if r == nil {
			t.Fatal("nil result")
		}
		if bytes.HasPrefix(r, []byte("error: ")) && s.Digest() != before {
			t.Fatalf("error result %q changed the state", r)
		}
		// A second store must agree (determinism) and snapshots must round-trip.
		s2 := New()
		s2.Execute([]byte("set a=1"))
		if r2 := s2.Execute(op); !bytes.Equal(r, r2) {
			t.Fatalf("non-deterministic result: %q vs %q", r, r2)
		}
		s3 := New()
		if err := s3.Restore(s.Snapshot()); err != nil {
			t.Fatalf("state after %q does not restore: %v", op, err)
		}
		if s3.Digest() != s.Digest() {
			t.Fatal("round trip changed digest")
		}
	})
}

func FuzzRestore(f *testing.F) {
	s := New()
	f.Add(s.Snapshot())
	s.Execute([]byte("set a=1"))
	s.Execute([]byte("set b=héllo"))
	f.Add(s.Snapshot())
	f.Add([]byte(snapshotMagic + "\x01\x01a\x00"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := New()
		if err := s.Restore(b); err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("error %v does not wrap ErrBadSnapshot", err)
			}
			return
		}
		// Restore accepts only canonical encodings, so the snapshot must
		// reproduce the input exactly.
		snap := s.Snapshot()
		if !bytes.Equal(snap, b) {
			t.Fatalf("accepted non-canonical snapshot %q (canonical %q)", b, snap)
		}
		s2 := New()
		if err := s2.Restore(snap); err != nil {
			t.Fatalf("re-restore: %v", err)
		}
		if s2.Digest() != s.Digest() {
			t.Fatal("re-restore changed digest")
		}
	})
}

func BenchmarkExecuteSet(b *testing.B) {
	ops := make([][]byte, 1024)
	for i := range ops {
		ops[i] = fmt.Appendf(nil, "set key%04d=value-%d", i, i)
	}
	s := New()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Execute(ops[i%len(ops)])
	}
}
