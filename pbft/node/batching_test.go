package node

import "testing"

// The primary's rule for cutting a batch: a lone request goes at once; with nothing in
// flight it waits for the clients coming back only while they would grow the batch by
// more than half; with batches in flight it waits for a full batch; the batch timeout
// (expired) and a full batch always cut.
func TestCutNow(t *testing.T) {
	for _, c := range []struct {
		name              string
		pending, batchMax int
		inflight          uint64
		returning         int
		expired, wantNow  bool
	}{
		{"a lone request", 1, 64, 0, 0, false, true},
		{"42 clients coming back to 22 waiting", 22, 64, 0, 42, false, false},
		{"as many coming back as waiting", 32, 64, 0, 32, false, false},
		{"fewer than half coming back", 43, 64, 0, 21, false, true},
		{"half coming back", 42, 64, 0, 21, false, true},
		{"coming back, timeout", 22, 64, 0, 42, true, true},
		{"coming back, full batch", 64, 64, 0, 42, false, true},
		{"in flight", 43, 64, 1, 0, false, false},
		{"in flight, timeout", 43, 64, 1, 0, true, true},
		{"in flight, full batch", 64, 64, 3, 0, false, true},
	} {
		if got := cutNow(c.pending, c.batchMax, c.inflight, c.returning, c.expired); got != c.wantNow {
			t.Errorf("%s: cutNow = %v, want %v", c.name, got, c.wantNow)
		}
	}
}
