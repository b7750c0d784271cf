package pbft

import (
	"bytes"
	"fmt"
	"testing"
)

// TestFitBusBoundsThePrePrepare: FitBus caps BatchBytes at half the bus's limit, and the
// primary's batch counts each request's names and tags too (RequestSize), not only its
// operation: with PBFT_BATCH_MAX well above 64 (it has no upper bound) a pre-prepare of
// small writes once exceeded a 64 KiB bus.
func TestFitBusBoundsThePrePrepare(t *testing.T) {
	const maxPayload = 64 << 10
	r := &Replica{cfg: DefaultConfig()}
	r.cfg.BatchMax = 1024
	r.FitBus(maxPayload)
	q := newRequestQueue()
	for i := range 1024 {
		q.push(&Request{Gateway: "gateway", Client: fmt.Sprintf("client-%04d", i), Timestamp: 1,
			Op: []byte("set k=v"), Auth: bytes.Repeat([]byte{1}, 4*16)})
	}
	batch := q.pop(r.cfg.BatchMax, r.cfg.BatchBytes)
	size := len(Marshal(&PrePrepare{View: 1, Seq: 1, Batch: batch}))
	if size > maxPayload/2 {
		t.Errorf("a pre-prepare of %d requests takes %d bytes, over half of a %d-byte bus (BatchBytes %d)",
			len(batch), size, maxPayload, r.cfg.BatchBytes)
	}
}
