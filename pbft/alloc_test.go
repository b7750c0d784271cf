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
func (h *hotPath) round(i int) {
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

// perRequest runs rounds batches (after a warm-up of a few checkpoint intervals) and
// returns the heap allocations and bytes per request.
func (h *hotPath) perRequest(rounds int) (allocs, bytes float64) {
	h.prepare(3 * int(h.r.cfg.CheckpointInterval))
	for i := range h.rounds {
		h.round(i)
	}
	h.prepare(rounds)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range h.rounds {
		h.round(i)
	}
	runtime.ReadMemStats(&after)
	n := float64(rounds * allocClients)
	return float64(after.Mallocs-before.Mallocs) / n, float64(after.TotalAlloc-before.TotalAlloc) / n
}

func BenchmarkHotPathAllocs(b *testing.B) {
	for _, id := range []int{0, 1} {
		b.Run(fmt.Sprintf("replica=%d", id), func(b *testing.B) {
			h := newHotPath(b, id)
			h.prepare(3 * int(h.r.cfg.CheckpointInterval))
			for i := range h.rounds {
				h.round(i)
			}
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

func TestHotPathAllocs(t *testing.T) {
	for _, id := range []int{0, 1} {
		h := newHotPath(t, id)
		allocs, bytes := h.perRequest(4 * int(h.r.cfg.CheckpointInterval))
		t.Logf("replica %d: %.2f allocations, %.0f bytes per request", id, allocs, bytes)
	}
}
