package pbft

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestClientTableMatchesModel records requests with timestamps mostly rising but often
// out of order (a client with several requests in flight) and checks every lookup and
// staleness answer against a plain model, and that a snapshot restores the same table.
func TestClientTableMatchesModel(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		capacity := 1 + rng.IntN(8)
		table := newClientTable(capacity)
		type entry struct{ t, seq uint64 }
		model := map[string][]entry{} // cached replies in execution order
		evicted := map[string]uint64{}
		executed := map[reqKey]bool{}
		executedAny := map[string]bool{}
		clients := []string{"a", "b", "c"}
		next := map[string]uint64{}
		check := func(step int) {
			t.Helper()
			for _, c := range clients {
				for ts := uint64(1); ts <= next[c]+2; ts++ {
					k := reqKey{c, ts}
					var want *entry
					for i := range model[c] {
						if model[c][i].t == ts {
							want = &model[c][i]
						}
					}
					got, ok := table.lookup(k)
					if ok != (want != nil) || ok && got.seq != want.seq {
						t.Fatalf("seed %d step %d: lookup(%s,%d) = %v,%v; want %v", seed, step, c, ts, got, ok, want)
					}
					if stale := table.stale(k); stale != (want == nil && executedAny[c] && ts <= evicted[c]) {
						t.Fatalf("seed %d step %d: stale(%s,%d) = %v", seed, step, c, ts, stale)
					}
				}
			}
		}
		for step := range 300 {
			c := clients[rng.IntN(len(clients))]
			// Mostly a little above the newest, often one below it that was overtaken (a gap
			// filled late), never one already executed or refused as stale.
			ts := next[c] + 1 + uint64(rng.IntN(3))
			if rng.IntN(3) == 0 && next[c] > 4 {
				ts = next[c] - uint64(rng.IntN(4))
			}
			k := reqKey{c, ts}
			if executed[k] || table.stale(k) {
				continue
			}
			executed[k], executedAny[c] = true, true
			next[c] = max(next[c], ts)
			seq := uint64(step + 1)
			table.record(k, cachedReply{seq: seq, result: []byte("r")})
			model[c] = append(model[c], entry{ts, seq})
			if len(model[c]) > capacity {
				evicted[c] = max(evicted[c], model[c][0].t)
				model[c] = model[c][1:]
			}
			check(step)
		}
		restored := newClientTable(capacity)
		snap := table.appendSnapshot(nil)
		if err := restored.restore(&decoder{buf: snap}); err != nil {
			t.Fatal(err)
		}
		table = restored
		check(-1)
	}
}

// The primary's batches stop before their requests pass BatchBytes, each counted with
// its names and a margin (RequestSize: 33 bytes here besides the operation), not by its
// operation alone; a request larger than that goes alone, and nothing is skipped or
// reordered.
func TestBatchStopsAtBatchBytes(t *testing.T) {
	q := newRequestQueue()
	sizes := []int{10, 10, 30, 200, 5, 5, 5, 5, 5, 5}
	for i, n := range sizes {
		q.push(&Request{Client: "c", Timestamp: uint64(i + 1), Op: make([]byte, n)})
	}
	var got [][]uint64
	for q.len() > 0 {
		var ts []uint64
		for _, r := range q.pop(4, 152) {
			ts = append(ts, r.Timestamp)
		}
		got = append(got, ts)
	}
	// 43+43+63 = 149 bytes; the 233-byte request alone; four of 38 (the count's limit).
	want := [][]uint64{{1, 2, 3}, {4}, {5, 6, 7, 8}, {9, 10}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("batches %v, want %v", got, want)
	}
}

// TestClientRecordSteadyStateAllocations: a client's steady stream of requests, each
// evicting the oldest cached reply, allocates nothing once the record's buffers have
// grown (they used to be re-sliced from the front and reallocated every few hundred
// requests, with the encodings copied out each time half of them were evicted), and
// lookups still find exactly the newest replies.
func TestClientRecordSteadyStateAllocations(t *testing.T) {
	const capacity = 128
	table := newClientTable(capacity)
	result := []byte("OK")
	ts := uint64(0)
	next := func() {
		ts++
		table.record(reqKey{"c", ts}, cachedReply{seq: ts, result: result})
	}
	for range 4 * capacity {
		next()
	}
	// One run of many records: AllocsPerRun truncates an average below one to zero.
	if a := testing.AllocsPerRun(1, func() {
		for range 10 * capacity {
			next()
		}
	}); a != 0 {
		t.Errorf("recording %d replies: %v allocations, want 0", 10*capacity, a)
	}
	for back := uint64(0); back < capacity+2; back++ {
		rep, ok := table.lookup(reqKey{"c", ts - back})
		if want := back < capacity; ok != want || ok && rep.seq != ts-back {
			t.Fatalf("lookup %d: %+v, %v; want cached: %v", ts-back, rep, ok, want)
		}
	}
	if !table.stale(reqKey{"c", ts - capacity}) || table.stale(reqKey{"c", ts + 1}) {
		t.Errorf("stale: evicted %d not refused, or unknown %d refused", ts-capacity, ts+1)
	}
}

// TestIsConflictAnswerTo: a client's check against the operation's SHA-256 accepts
// exactly ConflictResultFor(op): not another operation's, nor a cut or extended one.
func TestIsConflictAnswerTo(t *testing.T) {
	op := []byte("set x=1")
	h := sha256.Sum256(op)
	own := ConflictResultFor(op)
	if !IsConflictAnswerTo(own, &h) {
		t.Fatal("the conflict answer to op is not recognised")
	}
	for name, res := range map[string][]byte{
		"another operation's": ConflictResultFor([]byte("set x=2")),
		"cut":                 own[:len(own)-1],
		"extended":            append(bytes.Clone(own), 0),
		"a plain result":      []byte("OK"),
		"the bare prefix":     []byte(ConflictResult),
	} {
		if IsConflictAnswerTo(res, &h) {
			t.Errorf("%s accepted as the conflict answer to op", name)
		}
	}
}
