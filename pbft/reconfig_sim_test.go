package pbft

import (
	"bytes"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"testing"
)

// rsim runs replicas by name over a seeded network that carries each message with its
// configuration, the way the driver does (Outbound.Conf, StepIn): the receiver reads the
// sender's index in that configuration, and a broadcast reaches the members of the
// configuration and of the one decided to follow.
type rsim struct {
	t       *testing.T
	seed    int64
	rng     *rand.Rand
	reps    map[string]*Replica
	apps    map[string]*chainApp
	crashed map[string]bool
	liar    map[string]bool // serves forged state in transfers
	queue   []rmsg
	order   int64
	now     int
	k, l    uint64
	// client side: replies by request, with the replying id
	replies  map[reqKey][]rreply
	nextT    uint64
	durable  bool                // replicas keep a durable log in disk and restart from it
	disk     map[string][][]byte // each replica's durable log
	remake   map[string]func() *Replica
	refused  int // messages a replica rejected
	stateBad int // State messages refused for a digest that does not match
	// auth is the authenticator submit gives requests, and refuse drops a message its
	// receiver's driver would refuse (a request authenticator without the receiver's tag).
	auth   []byte
	refuse func(to string, m Message) bool
	// unsigned starts replicas without a Signer: no transition certificates (chain.go).
	unsigned bool
}

type rmsg struct {
	from, to string
	conf     uint64
	data     []byte
	at       int
	order    int64
}

type rreply struct {
	from string
	rep  *Reply
}

const simAdmin = "gw"

func newRsim(t *testing.T, seed int64, members []string) *rsim {
	s := &rsim{t: t, seed: seed, rng: rand.New(rand.NewSource(seed)), reps: map[string]*Replica{},
		apps: map[string]*chainApp{}, crashed: map[string]bool{}, liar: map[string]bool{},
		replies: map[reqKey][]rreply{}, k: 4, l: 8, disk: map[string][][]byte{}, remake: map[string]func() *Replica{}}
	for i := range members {
		s.add(members, i, 0, nil)
	}
	return s
}

// add starts the replica members[i] of configuration conf (a joiner when from is set).
func (s *rsim) add(members []string, i int, conf uint64, from *Membership) *Replica {
	members = slices.Clone(members)
	s.remake[members[i]] = func() *Replica { return s.make(members, i, conf, from) }
	s.disk[members[i]] = nil
	return s.make(members, i, conf, from)
}

// make builds replica members[i] as a process started with that configuration would.
func (s *rsim) make(members []string, i int, conf uint64, from *Membership) *Replica {
	c := DefaultConfig()
	c.Durable = s.durable
	c.ID, c.N, c.Members, c.Configuration, c.JoinFrom = i, len(members), slices.Clone(members), conf, from
	c.CheckpointInterval, c.LogWindow = s.k, s.l
	c.Admin = simAdmin
	c.ViewChangeTicks = 30
	app := &chainApp{}
	c.App = app
	if !s.unsigned {
		c.Signer = simSigner{members[i]}
	}
	r, err := NewReplica(c)
	if err != nil {
		s.t.Fatal(err)
	}
	s.reps[members[i]], s.apps[members[i]] = r, app
	return r
}

// restart replaces replica id by one started with its first configuration and
// restored from its durable log, as after kill -9.
func (s *rsim) restart(id string) {
	s.t.Helper()
	r := s.remake[id]()
	var records []Message
	for _, b := range s.disk[id] {
		m, err := Unmarshal(b)
		if err != nil {
			s.t.Fatalf("seed %d: %s durable record: %v", s.seed, id, err)
		}
		records = append(records, m)
	}
	if err := r.Restore(records); err != nil {
		s.t.Fatalf("seed %d: %s restore: %v", s.seed, id, err)
	}
	s.reps[id] = r
	s.flush(id)
}

// join starts the ids of next that are not running yet, as joiners of next.Conf.
func (s *rsim) join(cur Membership, next []string) {
	for i, id := range next {
		// A replica that left was stopped; coming back, it starts afresh as a joiner.
		if r := s.reps[id]; r == nil || !r.IsMember() && !r.Joining() {
			s.add(next, i, cur.Conf+1, &Membership{Conf: cur.Conf, Members: slices.Clone(cur.Members)})
		}
	}
}

func (s *rsim) names() []string {
	var out []string
	for id := range s.reps {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func (s *rsim) flush(id string) {
	r := s.reps[id]
	r.Propose()
	rd := r.Ready()
	if rd.Compact != nil {
		s.disk[id] = nil
		for _, m := range rd.Compact {
			s.disk[id] = append(s.disk[id], Marshal(m))
		}
	}
	for _, m := range rd.Persist {
		s.disk[id] = append(s.disk[id], Marshal(m))
	}
	for _, o := range rd.Messages {
		if o.To == ToGateway {
			rep := o.Msg.(*Reply)
			k := reqKey{rep.Client, rep.Timestamp}
			s.replies[k] = append(s.replies[k], rreply{id, rep})
			continue
		}
		var to []string
		switch {
		case o.Peer != "":
			to = []string{o.Peer}
		case o.To == Broadcast:
			to = append(slices.Clone(r.MembersOf(o.Conf)), r.MembersOf(o.Conf+1)...)
		default:
			to = []string{r.MembersOf(o.Conf)[o.To]}
		}
		msg := o.Msg
		if st, ok := msg.(*State); ok && s.liar[id] && len(st.Snapshot) > 0 {
			forged := *st
			forged.Snapshot = bytes.Repeat([]byte{0x42}, len(st.Snapshot))
			msg = &forged
		}
		data := Marshal(msg)
		seen := map[string]bool{id: true}
		for _, dst := range to {
			if seen[dst] {
				continue
			}
			seen[dst] = true
			s.order++
			s.queue = append(s.queue, rmsg{from: id, to: dst, conf: o.Conf, data: data, at: s.now + 1 + s.rng.Intn(3), order: s.order})
		}
	}
}

// tick delivers what is due, then ticks every running replica.
func (s *rsim) tick() {
	s.now++
	sort.Slice(s.queue, func(i, j int) bool {
		a, b := s.queue[i], s.queue[j]
		return a.at < b.at || a.at == b.at && a.order < b.order
	})
	n := 0
	for n < len(s.queue) && s.queue[n].at <= s.now {
		n++
	}
	due := s.queue[:n:n]
	s.queue = s.queue[n:]
	for _, m := range due {
		r := s.reps[m.to]
		if r == nil || s.crashed[m.to] || s.crashed[m.from] {
			continue
		}
		idx := Membership{Members: r.MembersOf(m.conf)}.Index(m.from)
		if k := Kind(m.data[0]); idx < 0 && (k == KindChain || k == KindAskAdmission) {
			idx = FromAnyone // as the driver: a chain certifies itself; a joiner asks by name
		}
		if idx < 0 && idx != FromAnyone {
			continue // a configuration the receiver does not know, or not its member
		}
		msg, err := Unmarshal(m.data)
		if err != nil {
			s.t.Fatalf("seed %d: %v", s.seed, err)
		}
		if s.refuse != nil && s.refuse(m.to, msg) {
			continue
		}
		if err := r.StepIn(m.conf, idx, msg); err != nil {
			if debugRsim && msg.Kind() != KindStatus {
				s.t.Logf("t%d %s->%s c%d %s: %v", s.now, m.from, m.to, m.conf, msg.Kind(), err)
			}
			s.refused++
			if _, ok := msg.(*State); ok && bytes.Contains([]byte(err.Error()), []byte("certified digest")) {
				s.stateBad++
			}
		}
		s.flush(m.to)
	}
	for _, id := range s.names() {
		if !s.crashed[id] {
			s.reps[id].Tick()
			s.flush(id)
		}
	}
}

// submit sends op from client as gateway gw to every member of members, and runs until
// a quorum of members of one configuration agree on its result; it returns the result,
// the configuration and the agreeing replies.
func (s *rsim) submit(gw, client string, op []byte, members []string) ([]byte, uint64, int) {
	s.t.Helper()
	s.nextT++
	req := &Request{Gateway: gw, Client: client, Timestamp: s.nextT, Op: op, Auth: s.auth}
	k := keyOf(req)
	for start := s.now; s.now-start < 3000; {
		if (s.now-start)%40 == 0 {
			for _, id := range members {
				if r := s.reps[id]; r != nil && !s.crashed[id] {
					_ = r.Step(FromClient, req)
					s.flush(id)
				}
			}
		}
		s.tick()
		if res, conf, n, ok := s.accepted(k); ok {
			// let the stragglers reply too, for exact counts
			for range 20 {
				s.tick()
			}
			res, conf, n, _ = s.accepted(k)
			return res, conf, n
		}
	}
	for _, id := range s.names() {
		r := s.reps[id]
		s.t.Logf("%s: conf %d member %v view %d active %v exec %d stable %d", id, r.Configuration(), r.IsMember(), r.View(), r.ViewActive(), r.LastExecuted(), r.StableCheckpoint())
	}
	s.t.Fatalf("seed %d: %q not answered by a quorum", s.seed, op)
	return nil, 0, 0
}

// accepted is the client's rule: the replies of one configuration (grouped by Conf), a
// quorum of that configuration's size agreeing.
func (s *rsim) accepted(k reqKey) ([]byte, uint64, int, bool) {
	byConf := map[uint64][]*Reply{}
	for _, rr := range s.replies[k] {
		byConf[rr.rep.Conf] = append(byConf[rr.rep.Conf], rr.rep)
	}
	for conf, reps := range byConf {
		n := s.confSize(conf)
		if res, agreeing, ok := AcceptReplies(reps, false, NewQuorum(n).Commit()); ok {
			return res, conf, agreeing, true
		}
	}
	return nil, 0, 0, false
}

func (s *rsim) confSize(conf uint64) int {
	for _, r := range s.reps {
		if m := r.MembersOf(conf); m != nil {
			return len(m)
		}
	}
	return 1 << 20
}

// reconfigure submits the administrator's reconfiguration of cur to next, starting the
// joiners first, and checks the result.
func (s *rsim) reconfigure(cur Membership, next []string) Membership {
	s.t.Helper()
	s.join(cur, next)
	res, conf, _ := s.submit(simAdmin, "admin", ReconfigOp(cur, next), cur.Members)
	m, ok := DecodeReconfigResult(res)
	if !ok || conf != cur.Conf || m.Conf != cur.Conf+1 || !slices.Equal(m.Members, next) {
		s.t.Fatalf("seed %d: reconfiguration answered %q in configuration %d", s.seed, res, conf)
	}
	return m
}

// settle runs until every running member of m is in it and has executed up to the
// highest number any of them executed (and an extra while).
func (s *rsim) settle(m Membership) {
	s.t.Helper()
	for i := 0; i < 4000; i++ {
		s.tick()
		if i%50 == 0 && s.converged(m) {
			return
		}
	}
	for _, id := range m.Members {
		r := s.reps[id]
		s.t.Logf("%s: conf %d member %v joining %v view %d exec %d stable %d", id, r.Configuration(), r.IsMember(), r.Joining(), r.View(), r.LastExecuted(), r.StableCheckpoint())
	}
	s.t.Fatalf("seed %d: configuration %d did not converge", s.seed, m.Conf)
}

func (s *rsim) converged(m Membership) bool {
	var top uint64
	for _, id := range m.Members {
		if r := s.reps[id]; !s.crashed[id] {
			top = max(top, r.LastExecuted())
		}
	}
	var d Digest
	first := true
	for _, id := range m.Members {
		r := s.reps[id]
		if s.crashed[id] {
			continue
		}
		if r.Configuration() != m.Conf || !r.IsMember() || r.LastExecuted() != top {
			return false
		}
		if first {
			d, first = r.StateDigest(), false
		} else if r.StateDigest() != d {
			s.t.Fatalf("seed %d: %s diverged", s.seed, fmt.Sprint(r.Self()))
		}
	}
	return true
}

// debugRsim logs every refused message (not statuses) of a failing run.
var debugRsim = false
