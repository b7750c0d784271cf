package pbft

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"testing"
)

// chainApp is a deterministic test application: its state is a hash chain of the
// operations applied, so any divergence in order or content shows in the digest.
type chainApp struct{ state [32]byte }

func (a *chainApp) Execute(op []byte) []byte {
	a.state = sha256.Sum256(append(a.state[:], op...))
	return []byte(hex.EncodeToString(a.state[:4]))
}
func (a *chainApp) Snapshot() []byte { return append([]byte(nil), a.state[:]...) }
func (a *chainApp) Restore(b []byte) error {
	if len(b) != 32 {
		return fmt.Errorf("bad snapshot")
	}
	copy(a.state[:], b)
	return nil
}

// fault is what the simulated network does to one replica.
type fault int

const (
	honest fault = iota
	crashed
	silent      // receives, sends nothing
	equivocate  // conflicting pre-prepares as primary, wrong digests as backup
	lieState    // honest, except that the state it serves in a transfer is forged
	lieCaughtUp // honest, except in what it resends one replica: forged catch-up answers (Committed), commits of wrong digests
)

// simConfig describes one seeded run.
type simConfig struct {
	n             int
	seed          int64
	drop, dup     float64 // probability per message
	maxDelay      int     // ticks; delivery order is random within that
	clients       int
	requests      int // total requests the clients issue
	checkpoint    uint64
	window        uint64
	batchMax      int
	retransmitAt  int // ticks before a client resends to all replicas
	faults        map[int]fault
	partition     func(tick, from, to int) bool // true drops the message
	refuse        func(to int, m Message) bool  // true drops it too: the receiver's driver refuses it
	maxTicks      int
	events        map[int]func(s *sim) // run at the start of a tick
	viewChangeTks int
	durable       bool // replicas keep a durable log (sim.disk) and restart from it
	stateChunk    int  // Config.StateChunk; small values make state transfer go in pieces
	opPad         int  // bytes added to each client operation
	omitVCBatches bool // view-changes name every batch by digest (ViewChangeBatchBytes 0)
	vcBatchBytes  int  // if > 0, Config.ViewChangeBatchBytes
}

type simMsg struct {
	from, to  int // to == -1 for a gateway
	data      []byte
	deliverAt int
	order     int64
}

// sim runs replicas over a seeded, lossy, reordering network.
type sim struct {
	t        testing.TB
	cfg      simConfig
	rng      *rand.Rand
	reps     []*Replica
	apps     []*chainApp
	faults   []fault
	queue    []simMsg
	now      int
	executed []map[uint64]Digest // per replica: seq -> digest executed
	// client side
	nextReq   int
	clients   []*simClient
	done      int
	answered  map[reqKey]string
	replies   []*Reply // every reply the gateway received
	seqOf     map[reqKey]uint64
	delivered int64
	// disk[i] is replica i's durable log, as its driver would keep it (cfg.durable).
	disk     [][][]byte
	restarts int
	// unsynced[i] are records replica i's driver has not made durable yet: a restart
	// loses them (persist says which may wait, as pbft/node lets them).
	unsynced [][][]byte
	syncRng  *rand.Rand // its own stream, so that the network's stays what it was
	// votes, if not nil, is every vote a correct replica sent: (replica, kind, view,
	// seq) -> digest; flush fails a run in which one votes for two digests.
	votes map[voteKey]Digest
	// statesRefused counts State messages a replica rejected (a forged snapshot).
	statesRefused int
	// largest[k] is the largest encoded message of kind k sent.
	largest [kindEnd]int
	// namedOnly counts prepared entries sent in view-changes with their batch left out.
	namedOnly int
	// vcBatches and nvBatches are the most batch bytes (batchSize) a view-change and a
	// new-view sent carried.
	vcBatches, nvBatches int
}

type simClient struct {
	name    string
	t       uint64
	req     *Request
	sentAt  int
	replies map[int]string
	bcast   bool
}

func newSim(t testing.TB, cfg simConfig) *sim {
	if cfg.clients == 0 {
		cfg.clients = 3
	}
	if cfg.maxTicks == 0 {
		cfg.maxTicks = 20000
	}
	if cfg.retransmitAt == 0 {
		cfg.retransmitAt = 15
	}
	s := &sim{t: t, cfg: cfg, rng: rand.New(rand.NewSource(cfg.seed)), answered: map[reqKey]string{}, seqOf: map[reqKey]uint64{}}
	s.disk = make([][][]byte, cfg.n)
	s.unsynced, s.syncRng = make([][][]byte, cfg.n), rand.New(rand.NewSource(cfg.seed))
	for i := 0; i < cfg.n; i++ {
		r, app := s.newReplica(i)
		s.reps = append(s.reps, r)
		s.apps = append(s.apps, app)
		s.executed = append(s.executed, map[uint64]Digest{})
		f := honest
		if cfg.faults != nil {
			f = cfg.faults[i]
		}
		s.faults = append(s.faults, f)
	}
	for i := 0; i < cfg.clients; i++ {
		s.clients = append(s.clients, &simClient{name: fmt.Sprintf("c%d", i)})
	}
	return s
}

func (s *sim) newReplica(i int) (*Replica, *chainApp) {
	c := DefaultConfig()
	c.ID, c.N = i, s.cfg.n
	if s.cfg.stateChunk > 0 {
		c.StateChunk = s.cfg.stateChunk
	}
	if s.cfg.vcBatchBytes > 0 {
		c.ViewChangeBatchBytes = s.cfg.vcBatchBytes
	}
	if s.cfg.omitVCBatches {
		c.ViewChangeBatchBytes = 0
	}
	if s.cfg.checkpoint > 0 {
		c.CheckpointInterval, c.LogWindow = s.cfg.checkpoint, s.cfg.window
	}
	if s.cfg.batchMax > 0 {
		c.BatchMax = s.cfg.batchMax
	}
	if s.cfg.viewChangeTks > 0 {
		c.ViewChangeTicks = s.cfg.viewChangeTks
	}
	c.Durable = s.cfg.durable
	app := &chainApp{}
	c.App = app
	r, err := NewReplica(c)
	if err != nil {
		s.t.Fatal(err)
	}
	return r, app
}

func (s *sim) enqueue(from, to int, m Message) {
	if s.cfg.partition != nil && to >= 0 && s.cfg.partition(s.now, from, to) {
		return
	}
	if s.cfg.refuse != nil && to >= 0 && s.cfg.refuse(to, m) {
		return
	}
	if s.rng.Float64() < s.cfg.drop {
		return
	}
	copies := 1
	if s.rng.Float64() < s.cfg.dup {
		copies = 2
	}
	data := Marshal(m)
	if k := m.Kind(); len(data) > s.largest[k] {
		s.largest[k] = len(data)
	}
	switch m := m.(type) {
	case *ViewChange:
		n := 0
		for _, p := range m.P {
			if len(p.Batch) == 0 && p.Digest != nullDigest {
				s.namedOnly++
			}
			n += batchSize(p.Batch)
		}
		s.vcBatches = max(s.vcBatches, n)
	case *NewView:
		n := 0
		for _, pp := range m.PrePrepares {
			n += batchSize(pp.Batch)
		}
		for _, vc := range m.ViewChanges {
			for _, p := range vc.P {
				n += batchSize(p.Batch)
			}
		}
		s.nvBatches = max(s.nvBatches, n)
	}
	for i := 0; i < copies; i++ {
		delay := 0
		if s.cfg.maxDelay > 0 {
			delay = s.rng.Intn(s.cfg.maxDelay + 1)
		}
		s.queue = append(s.queue, simMsg{from: from, to: to, data: data, deliverAt: s.now + delay, order: s.rng.Int63()})
	}
}

// flush takes replica i's Ready and puts its messages on the network, applying its fault.
func (s *sim) flush(i int) {
	r := s.reps[i]
	r.Propose()
	rd := r.Ready()
	s.persist(i, rd)
	for _, ex := range rd.Executed {
		if prev, ok := s.executed[i][ex.Seq]; ok && prev != ex.Digest {
			s.t.Fatalf("seed %d: replica %d executed seq %d twice with different digests", s.cfg.seed, i, ex.Seq)
		}
		s.executed[i][ex.Seq] = ex.Digest
	}
	if s.faults[i] == crashed || s.faults[i] == silent {
		return
	}
	for _, o := range rd.Messages {
		m := o.Msg
		if s.votes != nil && s.faults[i] == honest {
			s.noteVote(i, m)
		}
		if s.faults[i] == equivocate {
			m = s.corrupt(i, o)
			if m == nil {
				continue
			}
		}
		if st, ok := m.(*State); ok && s.faults[i] == lieState {
			m = forgeState(st)
		}
		if c, ok := m.(*Committed); ok && s.faults[i] == lieCaughtUp {
			m = s.forgeCommitted(c)
		}
		if _, ok := m.(*Commit); ok && s.faults[i] == lieCaughtUp && o.To >= 0 {
			m = s.corrupt(i, o)
		}
		switch o.To {
		case ToGateway:
			s.enqueue(i, -1, m)
		case Broadcast:
			for j := range s.reps {
				if j != i {
					mm := m
					if pp, ok := m.(*PrePrepare); ok && s.faults[i] == equivocate && j%2 == 0 {
						mm = s.forkPrePrepare(pp)
					}
					s.enqueue(i, j, mm)
				}
			}
		default:
			s.enqueue(i, o.To, m)
		}
	}
}

// corrupt makes a Byzantine replica's votes name a wrong digest.
func (s *sim) corrupt(i int, o Outbound) Message {
	switch m := o.Msg.(type) {
	case *Prepare:
		c := *m
		c.Digest[0] ^= 0xff
		return &c
	case *Commit:
		c := *m
		c.Digest[0] ^= 0xff
		return &c
	case *Committed:
		c := *m
		c.Digest[0] ^= 0xff
		return &c
	}
	return o.Msg
}

// forkPrePrepare is the conflicting pre-prepare an equivocating primary sends half the
// backups: the same number with its batch reversed (a different, valid digest).
func (s *sim) forkPrePrepare(pp *PrePrepare) *PrePrepare {
	b := make([]*Request, len(pp.Batch))
	for i := range pp.Batch {
		b[len(b)-1-i] = pp.Batch[i]
	}
	if len(b) < 2 {
		b = nil // a null request instead
	}
	return &PrePrepare{View: pp.View, Seq: pp.Seq, Digest: BatchDigest(b), Batch: b}
}

func (s *sim) deliver(m simMsg) {
	msg, err := Unmarshal(m.data)
	if err != nil {
		s.t.Fatalf("seed %d: codec: %v", s.cfg.seed, err)
	}
	s.delivered++
	if m.to == -1 {
		s.replies = append(s.replies, msg.(*Reply))
		s.gatewayReceive(msg.(*Reply))
		return
	}
	if s.faults[m.to] == crashed {
		return
	}
	if err := s.reps[m.to].Step(m.from, msg); err != nil {
		if _, ok := msg.(*State); ok {
			s.statesRefused++
		}
	}
	s.flush(m.to)
}

func (s *sim) gatewayReceive(rep *Reply) {
	for _, c := range s.clients {
		if c.req == nil || c.name != rep.Client || c.t != rep.Timestamp {
			continue
		}
		c.replies[rep.Replica] = fmt.Sprintf("%d/%s", rep.Seq, rep.Result)
		counts := map[string]int{}
		for _, v := range c.replies {
			counts[v]++
		}
		for v, n := range counts {
			if n >= s.reps[0].q.Weak() {
				k := reqKey{c.name, c.t}
				s.answered[k] = v
				c.req = nil
				s.done++
				return
			}
		}
	}
}

func (s *sim) clientStep() {
	for _, c := range s.clients {
		if c.req == nil && s.nextReq < s.cfg.requests {
			s.nextReq++
			c.t++
			op := fmt.Appendf(nil, "op-%s-%d", c.name, c.t)
			c.req = &Request{Gateway: "g", Client: c.name, Timestamp: c.t, Op: append(op, make([]byte, s.cfg.opPad)...)}
			c.sentAt, c.replies, c.bcast = s.now, map[int]string{}, false
			// To the primary of the view most replicas are in.
			s.sendRequest(s.guessPrimary(), c.req)
			continue
		}
		if c.req != nil && s.now-c.sentAt >= s.cfg.retransmitAt {
			c.sentAt = s.now
			for j := range s.reps {
				s.sendRequest(j, c.req)
			}
		}
	}
}

func (s *sim) sendRequest(to int, req *Request) {
	if s.rng.Float64() < s.cfg.drop {
		return
	}
	s.queue = append(s.queue, simMsg{from: FromClient, to: to, data: Marshal(req), deliverAt: s.now, order: s.rng.Int63()})
}

func (s *sim) guessPrimary() int {
	views := map[uint64]int{}
	for _, r := range s.reps {
		views[r.view]++
	}
	best, bestN := uint64(0), -1
	for v, n := range views {
		if n > bestN || (n == bestN && v > best) {
			best, bestN = v, n
		}
	}
	return s.reps[0].q.Primary(best)
}

// tick advances the simulation by one tick.
func (s *sim) tick() {
	s.syncSome()
	if ev := s.cfg.events[s.now]; ev != nil {
		ev(s)
	}
	s.clientStep()
	for i, r := range s.reps {
		if s.faults[i] != crashed {
			r.Tick()
			s.flush(i)
		}
	}
	// Deliver what is due, in a random order, until nothing more is due this tick.
	for rounds := 0; rounds < 10000; rounds++ {
		var due []simMsg
		rest := s.queue[:0]
		for _, m := range s.queue {
			if m.deliverAt <= s.now {
				due = append(due, m)
			} else {
				rest = append(rest, m)
			}
		}
		s.queue = rest
		if len(due) == 0 {
			break
		}
		sort.Slice(due, func(i, j int) bool { return due[i].order < due[j].order })
		for _, m := range due {
			s.deliver(m)
		}
	}
	s.now++
}

// run ticks until every request is answered or maxTicks pass; it reports whether all
// were answered.
func (s *sim) run() bool {
	for s.now < s.cfg.maxTicks {
		s.tick()
		if s.done == s.cfg.requests && s.nextReq == s.cfg.requests {
			return true
		}
	}
	return false
}

// seedsPlus are the seeds a scenario runs: 1 to seedCount(def), and the seeds the long
// run (PBFT_LONG=1) found failing, so that the default run keeps checking them.
func seedsPlus(def int, found ...int64) []int64 {
	var seeds []int64
	for seed := int64(1); seed <= int64(seedCount(def)); seed++ {
		seeds = append(seeds, seed)
	}
	for _, seed := range found {
		if !slices.Contains(seeds, seed) {
			seeds = append(seeds, seed)
		}
	}
	return seeds
}

// runUntil ticks until cond holds or limit more ticks pass.
func (s *sim) runUntil(limit int, cond func() bool) bool {
	for end := s.now + limit; s.now < end; {
		if cond() {
			return true
		}
		s.tick()
	}
	return cond()
}

func (s *sim) correct(i int) bool { return s.faults[i] == honest }

// checkSafety asserts that no two correct replicas executed different batches at the same
// sequence number, and that correct replicas at the same point have the same state.
func (s *sim) checkSafety() {
	s.t.Helper()
	agreed := map[uint64]Digest{}
	for i := range s.reps {
		if !s.correct(i) {
			continue
		}
		for seq, d := range s.executed[i] {
			if prev, ok := agreed[seq]; ok && prev != d {
				s.t.Fatalf("seed %d: SAFETY: seq %d executed as %s and %s", s.cfg.seed, seq, prev, d)
			}
			agreed[seq] = d
		}
	}
	byExec := map[uint64]Digest{}
	for i, r := range s.reps {
		if !s.correct(i) {
			continue
		}
		d := r.StateDigest()
		if prev, ok := byExec[r.lastExec]; ok && prev != d {
			s.t.Fatalf("seed %d: SAFETY: replicas at seq %d have different states", s.cfg.seed, r.lastExec)
		}
		byExec[r.lastExec] = d
	}
}

// converge runs until every correct, non-crashed replica has executed the same number,
// or fails after limit ticks.
func (s *sim) converge(limit int) {
	s.t.Helper()
	ok := s.runUntil(limit, func() bool {
		var want uint64
		first := true
		for i, r := range s.reps {
			if !s.correct(i) {
				continue
			}
			if first {
				want, first = r.lastExec, false
			} else if r.lastExec != want {
				return false
			}
		}
		return true
	})
	if !ok {
		var st []string
		for i, r := range s.reps {
			st = append(st, fmt.Sprintf("r%d(view %d active %v exec %d low %d fault %d)", i, r.view, r.viewActive, r.lastExec, r.lowWater, s.faults[i]))
			if t := r.transfer; t != nil {
				st = append(st, fmt.Sprintf("r%d transfer(seq %d from %v asked %d have %d of %d)", i, t.seq, t.from, t.asked, len(t.buf), t.total))
			}
		}
		s.t.Fatalf("seed %d: replicas did not converge: %v", s.cfg.seed, st)
	}
}

func describeRecord(m Message) string {
	switch m := m.(type) {
	case *PrePrepare:
		return fmt.Sprintf("pp v%d n%d d%x batch %d", m.View, m.Seq, m.Digest[:3], len(m.Batch))
	case *Commit:
		return fmt.Sprintf("commit v%d n%d d%x", m.View, m.Seq, m.Digest[:3])
	case *ViewChange:
		return fmt.Sprintf("view-change v%d low %d", m.NewView, m.LowWater)
	case *NewView:
		return fmt.Sprintf("new-view v%d pps %d", m.View, len(m.PrePrepares))
	case *State:
		return fmt.Sprintf("state n%d", m.Seq)
	}
	return m.Kind().String()
}

// forgeState is a well-formed snapshot with other contents: the application state of a
// chain that never happened, with the real reply cache. A piece of a larger snapshot gets
// one byte changed instead.
func forgeState(st *State) *State {
	if st.Offset != 0 || st.Total != uint64(len(st.Snapshot)) {
		forged := append([]byte(nil), st.Snapshot...)
		if len(forged) > 0 {
			forged[len(forged)/2] ^= 0xff
		}
		return &State{Seq: st.Seq, Offset: st.Offset, Total: st.Total, Snapshot: forged, Replica: st.Replica}
	}
	d := decoder{buf: st.Snapshot}
	app := append([]byte(nil), d.take(MaxSnapshot)...)
	if len(app) > 0 {
		app[0] ^= 0xff
	}
	forged := binary.AppendUvarint(nil, uint64(len(app)))
	forged = append(append(forged, app...), d.buf...)
	return &State{Seq: st.Seq, Total: uint64(len(forged)), Snapshot: forged, Replica: st.Replica}
}
