package pbft

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// This file drives a 4-replica cluster in lock step for fuzzing: three honest replicas
// exchange messages through a queue (encoded and decoded, as on the bus), and one
// Byzantine replica b says whatever the fuzz input makes it say. What the driver would
// refuse before Step is refused here too: b cannot forge another replica's signature, so
// view-changes of other replicas inside a NEW-VIEW must be ones they really sent, and
// another primary's NEW-VIEW can only be replayed as it was sent. Client requests are
// not restricted (clients may be faulty too). After every step the checks of fzCluster
// hold: no honest replica executes a different batch at a number another one executed,
// honest replicas that executed the same number hold the same state, honest replicas
// send the same reply (sequence number and result) to a request, and views, last
// executed numbers and stable checkpoints never go back.

// fzApp is a deterministic state machine: a hash chain of what it executed.
type fzApp struct{ state [32]byte }

func (a *fzApp) Execute(op []byte) []byte {
	a.state = sha256.Sum256(append(a.state[:], op...))
	return bytes.Clone(a.state[:4]) // the replica keeps results in its reply cache
}
func (a *fzApp) Snapshot() []byte { return bytes.Clone(a.state[:]) }
func (a *fzApp) Restore(b []byte) error {
	if len(b) != len(a.state) {
		return errors.New("fzApp: bad snapshot")
	}
	copy(a.state[:], b)
	return nil
}

const fzN = 4

type fzMsg struct {
	from, to int
	data     []byte
}

type fzCluster struct {
	t      testing.TB
	reps   [fzN]*Replica
	bad    int  // the Byzantine replica, or -1 while every replica is honest
	silent bool // the Byzantine replica's own messages (sent before it turned) are dropped

	queue   []fzMsg
	pool    []Message         // everything honest replicas sent: templates for b
	signed  map[string]bool   // SignedBytes of view-changes and new-views honest replicas sent
	decided map[uint64]Digest // seq -> digest some honest replica executed
	states  map[uint64]Digest // seq -> state digest of an honest replica right after it
	last    [fzN]struct{ view, exec, stable uint64 }
	clientT map[string]uint64
	replies map[reqKey]string // what honest replicas replied to each request
	disk    [fzN][][]byte     // each replica's durable log, kept as a driver keeps it
}

func fzConfig(id int) Config {
	c := DefaultConfig()
	c.ID, c.N, c.App = id, fzN, &fzApp{}
	c.CheckpointInterval, c.LogWindow = 2, 4 // watermarks and checkpoints move often
	c.BatchMax = 2
	c.ViewChangeTicks = 8
	c.StatusTicks = 4
	c.ClientHistory = 2   // the reply cache evicts, so stale retransmissions happen
	c.StateChunk = 4 + id // state transfer in pieces, of a different size per server
	if id%2 == 0 {
		c.ViewChangeBatchBytes = 0 // its view-changes name batches by digest only
	}
	c.Durable = true // replicas restart from their durable log (fzCluster.restart)
	return c
}

func newFzCluster(t testing.TB) *fzCluster {
	c := &fzCluster{t: t, bad: -1, signed: map[string]bool{}, decided: map[uint64]Digest{},
		states: map[uint64]Digest{}, clientT: map[string]uint64{}, replies: map[reqKey]string{}}
	for i := range c.reps {
		r, err := NewReplica(fzConfig(i))
		if err != nil {
			t.Fatal(err)
		}
		c.reps[i] = r
	}
	return c
}

func (c *fzCluster) honest(i int) bool { return i != c.bad }

// collect takes replica i's Ready, checks what it executed and queues what it sends.
func (c *fzCluster) collect(i int) {
	r := c.reps[i]
	r.Propose()
	rd := r.Ready()
	if rd.Compact != nil {
		c.disk[i] = nil
		for _, m := range rd.Compact {
			c.disk[i] = append(c.disk[i], Marshal(m))
		}
	}
	for _, m := range rd.Persist {
		c.disk[i] = append(c.disk[i], Marshal(m))
	}
	for _, ex := range rd.Executed {
		if d, ok := c.decided[ex.Seq]; ok && d != ex.Digest {
			c.t.Fatalf("replica %d executed %s at %d, another honest replica executed %s", i, ex.Digest, ex.Seq, d)
		}
		c.decided[ex.Seq] = ex.Digest
	}
	for _, o := range rd.Messages {
		switch m := o.Msg.(type) {
		case *ViewChange:
			c.signed[string(SignedBytes(m))] = true
		case *NewView:
			c.signed[string(SignedBytes(m))] = true
			for _, vc := range m.ViewChanges {
				c.signed[string(SignedBytes(vc))] = true
			}
		}
		if o.To == ToGateway {
			if rep, ok := o.Msg.(*Reply); ok && c.honest(i) {
				k := reqKey{rep.Client, rep.Timestamp}
				got := fmt.Sprintf("seq %d result %x", rep.Seq, rep.Result)
				if IsConflict(rep.Result) {
					// The answer to another operation under the same id: it names the
					// number the executed one has, and every honest replica says so.
					k.client += "\x00conflict"
					got = fmt.Sprintf("seq %d ", rep.Seq)
					if want, ok := c.replies[reqKey{rep.Client, rep.Timestamp}]; ok && !strings.HasPrefix(want, got) {
						c.t.Fatalf("replica %d answered a conflict at %s to %v, honest replicas executed it as %s", i, got, k, want)
					}
				} else if want, ok := c.replies[reqKey{k.client + "\x00conflict", k.t}]; ok && !strings.HasPrefix(got, want) {
					c.t.Fatalf("replica %d replied %s to %v, an honest replica answered a conflict at %s", i, got, k, want)
				}
				if want, ok := c.replies[k]; ok && want != got {
					c.t.Fatalf("replica %d replied %s to %v, another honest replica %s", i, got, k, want)
				}
				c.replies[k] = got
			}
			continue
		}
		c.pool = append(c.pool, o.Msg)
		if c.silent && i == c.bad {
			continue
		}
		data := Marshal(o.Msg)
		for to := range c.reps {
			if to != i && (o.To == Broadcast || o.To == to) {
				c.queue = append(c.queue, fzMsg{i, to, data})
			}
		}
	}
	if len(c.pool) > 512 {
		c.pool = c.pool[len(c.pool)-256:]
	}
}

// check asserts the invariants on every honest replica.
func (c *fzCluster) check() {
	for i, r := range c.reps {
		if !c.honest(i) {
			continue
		}
		l := &c.last[i]
		v, ex, st := r.View(), r.LastExecuted(), r.StableCheckpoint()
		switch {
		case v < l.view:
			c.t.Fatalf("replica %d went back from view %d to %d", i, l.view, v)
		case ex < l.exec:
			c.t.Fatalf("replica %d went back from executed %d to %d", i, l.exec, ex)
		case st < l.stable:
			c.t.Fatalf("replica %d's stable checkpoint went back from %d to %d", i, l.stable, st)
		case st > ex:
			c.t.Fatalf("replica %d: stable checkpoint %d above last executed %d", i, st, ex)
		}
		if ex != l.exec || len(c.states) == 0 {
			d := r.StateDigest()
			if want, ok := c.states[ex]; ok && want != d {
				c.t.Fatalf("replica %d: state after %d differs from another honest replica's", i, ex)
			}
			c.states[ex] = d
		}
		l.view, l.exec, l.stable = v, ex, st
	}
}

// step feeds m to replica to as from from, then collects and checks.
func (c *fzCluster) step(from, to int, m Message) {
	if err := c.reps[to].Step(from, m); err != nil && !errors.Is(err, ErrRejected) {
		c.t.Fatalf("Step(%d, %s) into %d: error %v does not wrap ErrRejected", from, m.Kind(), to, err)
	}
	c.collect(to)
	c.check()
}

// deliver delivers queued message i (dropping it if it is for the Byzantine replica).
func (c *fzCluster) deliver(i int) {
	msg := c.queue[i]
	c.queue = append(c.queue[:i], c.queue[i+1:]...)
	if !c.honest(msg.to) {
		return
	}
	m, err := Unmarshal(msg.data)
	if err != nil {
		c.t.Fatalf("a replica's own message does not decode: %v", err)
	}
	c.step(msg.from, msg.to, m)
}

// flush delivers in order until the queue is empty or limit messages went.
func (c *fzCluster) flush(limit int) {
	for n := 0; len(c.queue) > 0 && n < limit; n++ {
		c.deliver(0)
	}
}

func (c *fzCluster) tick() {
	for i, r := range c.reps {
		if c.honest(i) {
			r.Tick()
			c.collect(i)
		}
	}
	c.check()
}

// request sends a new request of client to replica to, straight from the gateway.
func (c *fzCluster) request(to int, client string) {
	c.clientT[client]++
	t := c.clientT[client]
	c.step(FromClient, to, &Request{Gateway: "gw", Client: client, Timestamp: t,
		Op: fmt.Appendf(nil, "set %s=%d", client, t), Auth: []byte{1}})
}

// setup brings the cluster into one of several states before the Byzantine replica
// turns, chosen by scenario: some requests executed (checkpoints, moved watermarks), a
// view change away from a silent primary, and messages left in flight.
func (c *fzCluster) setup(scenario, bad uint8) {
	reqs := int(scenario % 6)
	for i := 0; i < reqs; i++ {
		c.request(0, fmt.Sprintf("c%d", i%3))
		c.flush(1000)
	}
	c.bad = int(bad % fzN)
	if scenario&8 != 0 {
		// The primary of view 0 falls silent with a request pending: the others change
		// view. It is the Byzantine replica from then on.
		c.bad, c.silent = 0, true
		c.clientT["c9"]++
		for to := 1; to < fzN; to++ { // the client retransmits to every replica
			c.step(FromClient, to, &Request{Gateway: "gw", Client: "c9", Timestamp: c.clientT["c9"], Op: []byte("get c9")})
		}
		for i := 0; c.reps[1].View() == 0 || !c.reps[1].ViewActive(); i++ {
			if i > 200 {
				c.t.Fatalf("setup: the view change does not complete")
			}
			c.tick()
			c.flush(1000)
		}
	}
	if scenario&16 != 0 {
		c.request(1, "c8") // its pre-prepare and votes stay queued
		c.tick()
	}
	c.silent = true
}

// legal reports whether the driver would pass m, sent by the Byzantine replica, to Step:
// the signatures it carries must be ones their signers made.
func (c *fzCluster) legal(m Message) bool {
	nv, ok := m.(*NewView)
	if !ok {
		return true
	}
	if nv.Replica != c.bad && !c.signed[string(SignedBytes(nv))] {
		return false
	}
	for _, vc := range nv.ViewChanges {
		if vc.Replica != c.bad && !c.signed[string(SignedBytes(vc))] {
			return false
		}
	}
	return true
}

// claim makes m name the Byzantine replica as its sender, where it names one.
func claim(m Message, bad int) {
	switch m := m.(type) {
	case *Prepare:
		m.Replica = bad
	case *Commit:
		m.Replica = bad
	case *Checkpoint:
		m.Replica = bad
	case *StatusMsg:
		m.Replica = bad
	case *Fetch:
		m.Replica = bad
	case *State:
		m.Replica = bad
	case *ViewChange:
		m.Replica = bad
	case *NewView:
		m.Replica = bad
	}
}

// fzReader hands out the fuzz input a piece at a time; past the end it gives zeros.
type fzReader struct{ b []byte }

func (r *fzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	x := r.b[0]
	r.b = r.b[1:]
	return x
}

func (r *fzReader) bytes(n int) []byte {
	n = min(n, len(r.b))
	x := r.b[:n]
	r.b = r.b[n:]
	return x
}

// byzantine sends m from the Byzantine replica to honest replica to (or FromClient, for
// a request from a faulty client) if the driver would let it through.
func (c *fzCluster) byzantine(to int, m Message, asClient bool) {
	to %= fzN
	if !c.honest(to) {
		to = (to + 1) % fzN
	}
	from := c.bad
	if _, ok := m.(*Request); ok && asClient {
		from = FromClient
	}
	if !c.legal(m) {
		return
	}
	c.step(from, to, m)
}

// run interprets the fuzz input as a sequence of operations.
func (c *fzCluster) run(ops []byte) {
	in := &fzReader{ops}
	for n := 0; len(in.b) > 0 && n < 64; n++ {
		op := in.byte()
		switch op % 8 {
		case 0: // the Byzantine replica sends bytes of its choosing
			to := int(in.byte())
			data := in.bytes(int(binary.BigEndian.Uint16([]byte{in.byte(), in.byte()})) % 2048)
			m, err := Unmarshal(data)
			if err != nil {
				continue
			}
			if op&0x80 != 0 {
				claim(m, c.bad)
			}
			c.byzantine(to, m, op&0x40 != 0)
		case 1: // deliver some queued messages, in an order the input picks
			for k := int(in.byte()%16) + 1; k > 0 && len(c.queue) > 0; k-- {
				c.deliver(int(in.byte()) % len(c.queue))
			}
		case 2:
			c.tick()
		case 3: // a client request to any replica
			c.request(int(in.byte())%fzN, fmt.Sprintf("c%d", in.byte()%4))
		case 4, 5: // a message honest replicas sent, with one byte changed, claimed by b
			if len(c.pool) == 0 {
				continue
			}
			data := Marshal(c.pool[int(in.byte())%len(c.pool)])
			pos := int(binary.BigEndian.Uint16([]byte{in.byte(), in.byte()})) % len(data)
			val := in.byte()
			if op%8 == 4 {
				data[pos] = val
			}
			m, err := Unmarshal(data)
			if err != nil {
				continue
			}
			claim(m, c.bad)
			c.byzantine(int(in.byte()), m, false)
		case 6: // drop a queued message, or restart an honest replica from its durable log
			if op&0x80 != 0 {
				c.restart(int(in.byte()) % fzN)
				continue
			}
			if len(c.queue) > 0 {
				i := int(in.byte()) % len(c.queue)
				c.queue = append(c.queue[:i], c.queue[i+1:]...)
			}
		case 7:
			c.flush(200)
		}
	}
	c.settle()
}

// restart replaces honest replica i by one restored from its durable log, as a process
// killed now and started again: it keeps its view and stable checkpoint, and executes
// again from its last checkpoint (check then compares that execution with the first).
func (c *fzCluster) restart(i int) {
	if !c.honest(i) {
		return
	}
	r, err := NewReplica(fzConfig(i))
	if err != nil {
		c.t.Fatal(err)
	}
	var records []Message
	for _, b := range c.disk[i] {
		m, err := Unmarshal(b)
		if err != nil {
			c.t.Fatalf("replica %d's durable record does not decode: %v", i, err)
		}
		records = append(records, m)
	}
	if err := r.Restore(records); err != nil {
		c.t.Fatalf("replica %d does not restore from its own durable log: %v", i, err)
	}
	old := c.reps[i]
	if r.View() != old.View() || r.ViewActive() != old.ViewActive() || r.StableCheckpoint() != old.StableCheckpoint() {
		c.t.Fatalf("replica %d restored to view %d (active %v) stable %d, was view %d (active %v) stable %d",
			i, r.View(), r.ViewActive(), r.StableCheckpoint(), old.View(), old.ViewActive(), old.StableCheckpoint())
	}
	c.reps[i] = r
	c.last[i].exec = r.LastExecuted() // execution above the last checkpoint is redone
	c.collect(i)
	c.check()
}

// settle lets the honest replicas exchange what they owe for a while; nothing here
// asserts progress, only the invariants.
func (c *fzCluster) settle() {
	for i := 0; i < 6; i++ {
		c.flush(1000)
		for j := 0; j < 4; j++ {
			c.tick()
		}
	}
	c.flush(1000)
}

// fzSeedOps are operation sequences for FuzzCluster's seed corpus.
func fzSeedOps() [][]byte {
	enc := func(m Message) []byte {
		b := Marshal(m)
		return append([]byte{0x80, 1, byte(len(b) >> 8), byte(len(b))}, b...)
	}
	req := &Request{Gateway: "gw", Client: "cx", Timestamp: 1, Op: []byte("set x=1")}
	other := &Request{Gateway: "gw", Client: "cx", Timestamp: 1, Op: []byte("set x=2")}
	ppA := &PrePrepare{View: 0, Seq: 1, Digest: BatchDigest([]*Request{req}), Batch: []*Request{req}}
	ppB := &PrePrepare{View: 0, Seq: 1, Digest: BatchDigest([]*Request{other}), Batch: []*Request{other}}
	vc := &ViewChange{NewView: 1, LowWater: 0, Checkpoints: []CheckpointClaim{{Seq: 0}}}
	var seeds [][]byte
	// An equivocating primary: two pre-prepares for one number to different backups.
	eq := append(enc(ppA), 0x80, 2)
	b := Marshal(ppB)
	eq = append(eq, byte(len(b)>>8), byte(len(b)))
	eq = append(eq, b...)
	seeds = append(seeds, append(eq, 7, 2, 7, 2, 7))
	seeds = append(seeds, append(enc(vc), 2, 2, 2, 7, 1, 15, 3, 7))
	seeds = append(seeds, []byte{3, 1, 1, 5, 2, 4, 0, 0, 0, 7, 4, 3, 0, 40, 1, 1, 7, 2, 2, 2})
	seeds = append(seeds, []byte{3, 0, 1, 1, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 6, 0, 2, 2, 2, 2, 2, 7})
	// Restarts from the durable log (0x86 i) between requests, deliveries and ticks.
	seeds = append(seeds, []byte{3, 0, 1, 7, 0x86, 1, 2, 2, 7, 3, 1, 2, 1, 3, 0, 0, 0, 0x86, 2, 7, 0x86, 3, 2, 2, 2, 7, 3, 2, 3, 7})
	for _, m := range []Message{
		&Commit{View: 0, Seq: 1, Digest: ppA.Digest},
		&Checkpoint{Seq: 2, State: Digest{7}},
		&StatusMsg{View: 0, LowWater: 0, LastExecuted: 0},
		&Fetch{Seq: 2},
		&State{Seq: 2, Total: 8, Snapshot: []byte("snapshot")},
		&ViewChange{NewView: 2, LowWater: 2, Checkpoints: []CheckpointClaim{{Seq: 2}, {Seq: 4}}},
		&ViewChange{NewView: 1, P: []Prepared{{Seq: 1, Digest: ppA.Digest}}, Q: []PrePrepared{{Seq: 1, Digest: ppA.Digest}}},
		&FetchBatch{Seq: 1, Digest: ppA.Digest},
		&BatchMsg{Seq: 1, Digest: ppA.Digest, Batch: ppA.Batch},
		&Committed{View: 0, Seq: 1, Digest: ppA.Digest, Batch: ppA.Batch},
		&Committed{View: 0, Seq: 1, Digest: ppB.Digest, Batch: ppB.Batch},
	} {
		seeds = append(seeds, append(enc(m), 7, 2, 7))
	}
	return seeds
}

// FuzzCluster: a Byzantine replica (primary or backup) sends arbitrary, mutated and
// replayed messages into a cluster in one of several states, interleaved with client
// requests, ticks, and deliveries, losses and reorderings of honest traffic. Nothing
// panics and fzCluster's safety checks hold throughout.
func FuzzCluster(f *testing.F) {
	for i, ops := range fzSeedOps() {
		for _, sc := range []uint8{0, 3, 8 + 2, 16 + 5} {
			f.Add(sc, uint8(i), ops)
		}
	}
	f.Fuzz(func(t *testing.T, scenario, bad uint8, ops []byte) {
		c := newFzCluster(t)
		c.setup(scenario, bad)
		c.run(ops)
	})
}
