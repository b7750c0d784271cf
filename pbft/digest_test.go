package pbft

import (
	"crypto/sha256"
	"fmt"
	"testing"
)

// encodeBatch is the canonical encoding BatchDigest hashes, built whole.
func encodeBatch(batch []*Request) []byte {
	buf := appendUvarint(nil, uint64(len(batch)))
	for _, r := range batch {
		buf = appendString(buf, r.Gateway)
		buf = appendString(buf, r.Client)
		buf = appendUvarint(buf, r.Timestamp)
		buf = appendBytes(buf, r.Op)
	}
	return buf
}

// TestBatchDigestIsTheEncodingsHash: whether the encoding fits the stack buffer or
// streams in chunks, the digest is SHA-256 of the whole encoding.
func TestBatchDigestIsTheEncodingsHash(t *testing.T) {
	for _, tc := range []struct{ requests, opSize int }{{0, 0}, {1, 0}, {64, 8}, {3, 1500}, {5, 3000}, {2, 10000}, {200, 40}} {
		batch := make([]*Request, tc.requests)
		for i := range batch {
			op := make([]byte, tc.opSize)
			for j := range op {
				op[j] = byte(i + j)
			}
			batch[i] = &Request{Gateway: "gw", Client: fmt.Sprint("c", i), Timestamp: uint64(i + 1), Op: op}
		}
		if got, want := BatchDigest(batch), Digest(sha256.Sum256(encodeBatch(batch))); got != want {
			t.Errorf("%d requests of %d bytes: digest %v, want %v", tc.requests, tc.opSize, got, want)
		}
	}
}

// TestBatchDigestAllocations: a batch's digest is computed on every pre-prepare, and a
// request's (RequestDigest) for each request's authenticator: no allocation for a
// batch of small requests (it used to grow its buffer from nil and allocate a hasher).
func TestBatchDigestAllocations(t *testing.T) {
	batch := make([]*Request, 64)
	for i := range batch {
		batch[i] = &Request{Gateway: "gw", Client: fmt.Sprint("client-", i), Timestamp: uint64(i + 1), Op: []byte("set k=v")}
	}
	if a := testing.AllocsPerRun(100, func() { BatchDigest(batch) }); a != 0 {
		t.Errorf("BatchDigest of 64 requests: %v allocations, want 0", a)
	}
}

// TestRequestDigestIsABatchOfOne: a request's digest (what its authenticator covers) is
// the digest of a batch of it alone, ordered or read-only, whether its fields fit the
// stack buffer or not; and a small one's allocates nothing.
func TestRequestDigestIsABatchOfOne(t *testing.T) {
	for _, opSize := range []int{0, 8, 200, 255, 256, 5000} {
		for _, ro := range []bool{false, true} {
			op := make([]byte, opSize)
			for i := range op {
				op[i] = byte(i)
			}
			r := &Request{Gateway: "gateway", Client: "load17", Timestamp: 1<<62 + 3, Op: op, Auth: []byte{9}, ReadOnly: ro}
			if got, want := r.Digest(), BatchDigest([]*Request{r}); got != want {
				t.Errorf("op of %d bytes, read-only %v: digest %x, want %x", opSize, ro, got, want)
			}
			if got, want := RequestDigest(r), r.Digest(); string(got) != string(want[:]) {
				t.Errorf("op of %d bytes, read-only %v: RequestDigest %x, want %x", opSize, ro, got, want)
			}
		}
	}
	r := &Request{Gateway: "gateway", Client: "load17", Timestamp: 42, Op: []byte("set k17=")}
	if a := testing.AllocsPerRun(100, func() { r.Digest() }); a != 0 {
		t.Errorf("Digest of a small request: %v allocations, want 0", a)
	}
}

// BenchmarkRequestDigest is the digest of a request of the load tool (gateway bench).
func BenchmarkRequestDigest(b *testing.B) {
	r := &Request{Gateway: "gateway", Client: "load17", Timestamp: 1 << 60, Op: []byte("set k17=")}
	b.ReportAllocs()
	for b.Loop() {
		r.Digest()
	}
}
