package pbft

import (
	"bytes"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// What the hot path's shared buffers must not break: everything a replica keeps or hands
// out past the message it came in (requests in the log until their checkpoint is stable,
// replies cached per client, records handed to the durable log's writer goroutine) keeps
// its own bytes.

// namedBatch is 70 requests of 6 gateways (more than requestNames shares) whose client
// names grow past what the first name sizes their buffer for.
func namedBatch() []*Request {
	var batch []*Request
	for i := 0; i < 70; i++ {
		client := "c"
		if i > 0 {
			client = fmt.Sprintf("client-%d-%s", i, strings.Repeat("x", i))
		}
		batch = append(batch, &Request{Gateway: fmt.Sprintf("gateway-%d", i%6), Client: client,
			Timestamp: uint64(i + 1), Op: []byte("op"), Auth: []byte("tag")})
	}
	return batch
}

// TestDecodedNamesOutliveTheirInput: the names of a decoded batch (a pre-prepare's, a
// gateway's requests message's) are copies: they stay what was sent when the input is
// overwritten and when the names buffer grows past its first size.
func TestDecodedNamesOutliveTheirInput(t *testing.T) {
	want := namedBatch()
	pp := &PrePrepare{Seq: 1, Digest: BatchDigest(want), Batch: want}
	for name, decode := range map[string]func([]byte) ([]*Request, error){
		"pre-prepare": func(b []byte) ([]*Request, error) {
			m, err := Unmarshal(b)
			if err != nil {
				return nil, err
			}
			return m.(*PrePrepare).Batch, nil
		},
		"requests": DecodeRequests,
	} {
		in := Marshal(pp)
		if name == "requests" {
			in = AppendRequests(nil, want)
		}
		got, err := decode(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range in {
			in[i] = 0xaa
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d requests, want %d", name, len(got), len(want))
		}
		for i, r := range got {
			if r.Gateway != want[i].Gateway || r.Client != want[i].Client || r.Timestamp != want[i].Timestamp {
				t.Fatalf("%s: request %d is %q/%q/%d after its input was overwritten, want %q/%q/%d",
					name, i, r.Gateway, r.Client, r.Timestamp, want[i].Gateway, want[i].Client, want[i].Timestamp)
			}
		}
	}
}

// TestClientTableKeepsItsOwnNames: a client's record is keyed by a copy of its name, not
// by the decoded request's, which would keep the names of its whole batch alive.
func TestClientTableKeepsItsOwnNames(t *testing.T) {
	m, err := Unmarshal(Marshal(&PrePrepare{Seq: 1, Batch: namedBatch()}))
	if err != nil {
		t.Fatal(err)
	}
	batch := m.(*PrePrepare).Batch
	table := newClientTable(4)
	for _, r := range batch {
		table.record(keyOf(r), cachedReply{seq: 1, result: []byte("ok")})
	}
	for name := range table.records {
		for _, r := range batch {
			if unsafe.StringData(name) == unsafe.StringData(r.Client) {
				t.Fatalf("the record of %q is keyed by the decoded request's name", name)
			}
		}
	}
	for _, r := range batch {
		if rep, ok := table.lookup(keyOf(r)); !ok || rep.seq != 1 {
			t.Fatalf("%s/%d: %+v %v", r.Client, r.Timestamp, rep, ok)
		}
	}
}

// TestRequestQueueMatchesModel: under random pushes, removals and pops, the queue pops
// exactly the live requests in arrival order, and a batch it returned stays as it was
// while the queue reuses and compacts its array.
func TestRequestQueueMatchesModel(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		checkRequestQueueAgainstModel(t, seed)
	}
}

// checkRequestQueueAgainstModel drives a queue with random pushes (keys from a small
// space, so a key comes back, live or not, under a new request), removals and pops
// (batches cut by count and by bytes), against a list of the live requests in arrival
// order: pushing a live key replaces its request, which goes to the end.
func checkRequestQueueAgainstModel(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	q := newRequestQueue()
	var model []*Request // live requests in arrival order
	type popped struct {
		batch []*Request
		want  []*Request
	}
	var batches []popped
	for step := 0; step < 20000; step++ {
		switch op := rng.Intn(10); {
		case op < 5:
			r := &Request{Client: fmt.Sprint("c", rng.Intn(4)), Timestamp: uint64(rng.Intn(12)),
				Op: bytes.Repeat([]byte("x"), 1+rng.Intn(5))}
			model = slices.DeleteFunc(model, func(x *Request) bool { return keyOf(x) == keyOf(r) })
			q.push(r)
			model = append(model, r)
		case op < 8 && len(model) > 0:
			i := rng.Intn(len(model))
			q.remove(keyOf(model[i]))
			model = slices.Delete(model, i, i+1)
		default:
			// Each request takes 35 to 39 bytes (RequestSize): batches of one to four.
			max, maxBytes := 1+rng.Intn(6), 35+rng.Intn(125)
			b := q.pop(max, maxBytes)
			n, size := 0, 0
			for n < min(max, len(model)) && (n == 0 || size+RequestSize(model[n]) <= maxBytes) {
				size += RequestSize(model[n])
				n++
			}
			if !slices.Equal(b, model[:n]) {
				t.Fatalf("seed %d step %d: popped %v, want %v", seed, step, b, model[:n])
			}
			batches = append(batches, popped{b, slices.Clone(b)})
			model = model[n:]
		}
		if q.len() != len(model) || !slices.Equal(q.all(), model) {
			t.Fatalf("seed %d step %d: queue holds %v, want %v", seed, step, q.all(), model)
		}
		if len(model) == 0 && slices.ContainsFunc(q.order[:cap(q.order)], func(r *Request) bool { return r != nil }) {
			t.Fatalf("seed %d step %d: an empty queue still points at requests", seed, step)
		}
	}
	for i, p := range batches {
		if !slices.Equal(p.batch, p.want) {
			t.Fatalf("seed %d: batch %d changed after it was popped: %v, want %v", seed, i, p.batch, p.want)
		}
	}
}

// TestRequestQueueSteadyState: a primary's stream of batches allocates only the batches,
// and a backup's queue, which only ever removes (a pre-prepare takes its requests), does
// not grow with the requests it has seen.
func TestRequestQueueSteadyState(t *testing.T) {
	q := newRequestQueue()
	reqs := make([]*Request, 64)
	for i := range reqs {
		reqs[i] = &Request{Client: fmt.Sprint("c", i), Op: []byte("x")}
	}
	ts := uint64(0)
	round := func() {
		ts++
		for _, r := range reqs {
			r.Timestamp = ts
			q.push(r)
		}
		if b := q.pop(64, 1<<20); len(b) != 64 {
			t.Fatalf("popped %d, want 64", len(b))
		}
	}
	round()
	if a := testing.AllocsPerRun(100, round); a != 1 {
		t.Errorf("a batch of 64 through the queue: %v allocations, want 1 (the batch)", a)
	}

	backup := newRequestQueue()
	live := &Request{Client: "waiting", Timestamp: 1, Op: []byte("x")}
	backup.push(live) // never ordered: the queue is never empty
	for i := 0; i < 100000; i++ {
		r := &Request{Client: "c", Timestamp: uint64(i + 1), Op: []byte("x")}
		backup.push(r)
		backup.remove(keyOf(r))
	}
	if c := cap(backup.order); c > 64 {
		t.Errorf("a backup's queue with one live request holds an array of %d", c)
	}
	if got := backup.all(); len(got) != 1 || got[0] != live {
		t.Errorf("backup queue holds %v, want only the waiting request", got)
	}
}

// TestHotPathKeepsWhatItHandsOut runs the hot path with a durable log: every record and
// reply a Ready hands out goes to a writer goroutine, as the node's log writer and held
// replies get them, which encodes it again while the replica goes on. Any buffer the
// replica reused under them would show as a changed encoding (or as a race, under
// -race). At the end, the requests the log still holds are checked against what the
// gateway sent, and the cached replies against what executed.
func TestHotPathKeepsWhatItHandsOut(t *testing.T) {
	h := newHotPath(t, 1)
	h.r.cfg.Durable = true
	type handed struct {
		m   Message
		enc []byte
	}
	ch := make(chan handed, 1<<16)
	changed := make(chan string, 1)
	go func() {
		var bad string
		for x := range ch {
			if enc := Marshal(x.m); bad == "" && !bytes.Equal(enc, x.enc) {
				bad = fmt.Sprintf("a %s changed after it was handed out", x.m.Kind())
			}
		}
		changed <- bad
	}()
	const rounds = 600 // past a few stable checkpoints
	h.prepare(rounds)
	kinds := map[Kind]int{}
	for i := range h.rounds {
		h.roundWith(i, func(rd Ready) {
			for _, m := range append(slices.Clip(rd.Persist), rd.Compact...) {
				ch <- handed{m, Marshal(m)}
				kinds[m.Kind()]++
			}
			for _, o := range rd.Messages {
				ch <- handed{o.Msg, Marshal(o.Msg)}
				kinds[o.Msg.Kind()]++
			}
		})
	}
	close(ch)
	if bad := <-changed; bad != "" {
		t.Fatal(bad)
	}
	if kinds[KindPrePrepare] == 0 || kinds[KindReply] != rounds*allocClients || kinds[KindCheckpoint] == 0 {
		t.Fatalf("handed out %v: want pre-prepares, checkpoints and every reply", kinds)
	}
	logged := 0
	for seq, e := range h.r.log {
		if e.pp == nil {
			continue
		}
		logged++
		for c, r := range e.pp.Batch {
			// The harness gives every client timestamp seq at seq.
			if r.Gateway != "gateway-1" || r.Client != h.clients[c] || r.Timestamp != seq || !bytes.Equal(r.Op, h.op) {
				t.Fatalf("seq %d request %d is %s/%s/%d %q", seq, c, r.Gateway, r.Client, r.Timestamp, r.Op)
			}
		}
	}
	if logged == 0 {
		t.Fatal("no pre-prepare left in the log to check")
	}
	for _, name := range h.clients {
		for back := uint64(0); back < uint64(h.r.cfg.ClientHistory); back++ {
			seq := h.seq - back
			if rep, ok := h.r.clients.lookup(reqKey{name, seq}); !ok || rep.seq != seq || string(rep.result) != "ok" {
				t.Fatalf("%s/%d: cached %+v %v", name, seq, rep, ok)
			}
		}
	}
}

// TestDecodeAllocations: a message of 64 requests decodes into a handful of allocations
// (its slices, its names' buffer, its gateway's name), not a few per request.
func TestDecodeAllocations(t *testing.T) {
	batch := make([]*Request, 64)
	for i := range batch {
		batch[i] = &Request{Gateway: "gateway-1", Client: fmt.Sprintf("client-%02d", i), Timestamp: 7, Op: []byte("op"), Auth: []byte("tag")}
	}
	reqs := AppendRequests(nil, batch)
	pp := Marshal(&PrePrepare{Seq: 1, Digest: BatchDigest(batch), Batch: batch})
	if a := testing.AllocsPerRun(100, func() { _, _ = DecodeRequests(reqs) }); a > 4 {
		t.Errorf("DecodeRequests of 64 requests: %v allocations, want at most 4", a)
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = Unmarshal(pp) }); a > 5 {
		t.Errorf("Unmarshal of a pre-prepare of 64 requests: %v allocations, want at most 5", a)
	}
}
