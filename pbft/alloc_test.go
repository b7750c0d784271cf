package pbft

import (
	"fmt"
	"runtime"
	"testing"
)

// The replica's hot path under load, without the network: full batches of 64 clients'
// requests decoded from their wire bytes, ordered, executed and answered, with
// checkpoints becoming stable on the way, at a backup (a pre-prepare's batch decoded)
// and at the primary (requests decoded and batched). The allocation tests bound what
// one request costs; the benchmarks report it.

const allocClients = 64

// fixedApp answers every operation with one shared result: the replica's allocations
// only, not an application's.
type fixedApp struct{ result []byte }

func (a *fixedApp) Execute([]byte) []byte   { return a.result }
func (a *fixedApp) Snapshot() []byte        { return nil }
func (a *fixedApp) Restore(b []byte) error  { return nil }
func (a *fixedApp) String() string          { return "fixedApp" }
func allocName(prefix string, i int) string { return fmt.Sprintf("%s%02d", prefix, i) }

// hotPath drives replica id of a 4-replica cluster in view 0 (replica 0 primary) through
// one batch per round, from pre-encoded messages, as a node would after their envelopes.
type hotPath struct {
	tb      testing.TB
	r       *Replica
	id      int
	seq     uint64
	ts      uint64
	clients []string
	op      []byte
	auth    []byte
	// rounds holds the encoded messages of the coming rounds (prepared outside the
	// measurement): a decoder keeps sub-slices of its input, so each round needs its own.
	rounds []hotRound
}

type hotRound struct {
	requests []byte   // the primary's input: the gateway's requests message
	pp       []byte   // a backup's input: the primary's pre-prepare
	votes    [][]byte // prepares and commits of the other replicas, in order
	senders  []int
}

func newHotPath(tb testing.TB, id int) *hotPath {
	cfg := DefaultConfig()
	cfg.ID, cfg.N, cfg.App = id, 4, &fixedApp{result: []byte("ok")}
	r, err := NewReplica(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	h := &hotPath{tb: tb, r: r, id: id, op: []byte("set key-00 value"), auth: make([]byte, 4*9)}
	for i := 0; i < allocClients; i++ {
		h.clients = append(h.clients, allocName("client-", i))
	}
	return h
}

// prepare encodes the messages of the next n rounds.
func (h *hotPath) prepare(n int) {
	h.rounds = h.rounds[:0]
	for i := 0; i < n; i++ {
		h.seq++
		h.ts++
		batch := make([]*Request, allocClients)
		for c := range batch {
			batch[c] = &Request{Gateway: "gateway-1", Client: h.clients[c], Timestamp: h.ts, Op: h.op, Auth: h.auth}
		}
		pp := &PrePrepare{View: 0, Seq: h.seq, Digest: BatchDigest(batch), Batch: batch}
		var rd hotRound
		rd.requests = AppendRequests(nil, batch)
		rd.pp = Marshal(pp)
		for _, from := range []int{1, 2, 3} {
			if from != h.id {
				rd.votes = append(rd.votes, Marshal(&Prepare{View: 0, Seq: h.seq, Digest: pp.Digest, Replica: from}))
				rd.senders = append(rd.senders, from)
			}
		}
		for _, from := range []int{0, 1, 2} {
			if from != h.id {
				rd.votes = append(rd.votes, Marshal(&Commit{View: 0, Seq: h.seq, Digest: pp.Digest, Replica: from}))
				rd.senders = append(rd.senders, from)
			}
		}
		h.rounds = append(h.rounds, rd)
	}
}

// round runs the next prepared round and checks that its batch executed.
func (h *hotPath) round(i int) { h.roundWith(i, nil) }

// roundWith is round, with handed called on the round's Ready before it is recycled.
func (h *hotPath) roundWith(i int, handed func(Ready)) {
	rd := &h.rounds[i]
	if h.id == 0 {
		reqs, err := DecodeRequests(rd.requests)
		if err != nil {
			h.tb.Fatal(err)
		}
		for _, req := range reqs {
			if err := h.r.Step(FromClient, req); err != nil {
				h.tb.Fatal(err)
			}
		}
		h.r.Propose()
	} else {
		h.step(0, rd.pp)
	}
	for j, b := range rd.votes {
		h.step(rd.senders[j], b)
	}
	want := h.seq - uint64(len(h.rounds)-1-i)
	if h.r.LastExecuted() != want {
		h.tb.Fatalf("executed up to %d, want %d", h.r.LastExecuted(), want)
	}
	out := h.r.Ready()
	if handed != nil {
		handed(out)
	}
	for _, o := range out.Messages {
		if cp, ok := o.Msg.(*Checkpoint); ok {
			// The others announce the same state: the checkpoint becomes stable and the
			// log is truncated, as under load.
			for _, from := range []int{0, 1, 2, 3} {
				if from != h.id {
					h.stepMsg(from, &Checkpoint{Seq: cp.Seq, State: cp.State, Replica: from})
				}
			}
		}
	}
	h.r.Recycle(out.Messages)
}

func (h *hotPath) step(from int, b []byte) {
	m, err := Unmarshal(b)
	if err != nil {
		h.tb.Fatal(err)
	}
	h.stepMsg(from, m)
}

func (h *hotPath) stepMsg(from int, m Message) {
	if err := h.r.Step(from, m); err != nil {
		h.tb.Fatalf("%s from %d: %v", m.Kind(), from, err)
	}
}

// warm runs a few checkpoint intervals, so that the client table and the log are at
// their steady state.
func (h *hotPath) warm() {
	h.prepare(3 * int(h.r.cfg.CheckpointInterval))
	for i := range h.rounds {
		h.round(i)
	}
}

// perBatch runs rounds batches after a warm-up and returns the heap allocations per
// batch (testing.AllocsPerRun) and the bytes allocated per request.
func (h *hotPath) perBatch(rounds int) (allocs, bytes float64) {
	h.warm()
	h.prepare(rounds + 1) // AllocsPerRun runs once more first
	i := 0
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	allocs = testing.AllocsPerRun(rounds, func() { h.round(i); i++ })
	runtime.ReadMemStats(&after)
	return allocs, float64(after.TotalAlloc-before.TotalAlloc) / float64((rounds+1)*allocClients)
}

func BenchmarkHotPathAllocs(b *testing.B) {
	for _, id := range []int{0, 1} {
		b.Run(fmt.Sprintf("replica=%d", id), func(b *testing.B) {
			h := newHotPath(b, id)
			h.warm()
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				b.StopTimer()
				h.prepare(min(b.N-done, 512))
				b.StartTimer()
				for i := range h.rounds {
					h.round(i)
				}
				done += len(h.rounds)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*allocClients), "ns/req")
		})
	}
}

// TestHotPathAllocs bounds the allocations of a full batch of 64 requests: each request
// used to cost about 1.4 allocations at a backup (its client's name, besides the batch's
// few) and 3.5 at the primary (a request, its gateway's and its client's names); the
// names of a message now share one buffer and its requests one slab, and what is left
// is a batch's own: its pre-prepare, votes, log entry, replies.
func TestHotPathAllocs(t *testing.T) {
	for _, c := range []struct {
		id  int
		max float64 // per batch of 64
	}{{0, 40}, {1, 40}} {
		h := newHotPath(t, c.id)
		allocs, bytes := h.perBatch(2 * int(h.r.cfg.CheckpointInterval))
		t.Logf("replica %d: %.0f allocations per batch (%.2f per request), %.0f bytes per request",
			c.id, allocs, allocs/allocClients, bytes)
		if allocs > c.max {
			t.Errorf("replica %d: %.0f allocations per batch of %d, want at most %.0f", c.id, allocs, allocClients, c.max)
		}
	}
}
