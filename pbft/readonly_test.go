package pbft

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// regApp is a key-value register for the read-only tests: "set K=V" and "get K"
// (the read-only operation). A get of an absent key returns "".
type regApp struct{ m map[string]string }

func newRegApp() *regApp { return &regApp{m: map[string]string{}} }

func (a *regApp) Execute(op []byte) []byte {
	verb, arg, _ := strings.Cut(string(op), " ")
	switch verb {
	case "set":
		k, v, _ := strings.Cut(arg, "=")
		a.m[k] = v
		return []byte("OK")
	case "get":
		return []byte(a.m[arg])
	}
	return []byte("error: unknown operation")
}

func (a *regApp) IsReadOnly(op []byte) bool { return bytes.HasPrefix(op, []byte("get ")) }

func (a *regApp) Snapshot() []byte {
	keys := make([]string, 0, len(a.m))
	for k := range a.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, a.m[k])
	}
	return b
}

func (a *regApp) Restore(b []byte) error {
	d := decoder{buf: b}
	m := map[string]string{}
	for len(d.buf) > 0 && d.err == nil {
		k := d.string()
		m[k] = d.string()
	}
	if d.err != nil {
		return d.err
	}
	a.m = m
	return nil
}

func (a *regApp) clone() *regApp {
	c := newRegApp()
	for k, v := range a.m {
		c.m[k] = v
	}
	return c
}

func TestAcceptReplies(t *testing.T) {
	ro := func(replica int, result string) *Reply {
		return &Reply{Replica: replica, Result: []byte(result), ReadOnly: true}
	}
	ordered := func(replica int, result string) *Reply { return &Reply{Replica: replica, Result: []byte(result)} }
	cases := []struct {
		name     string
		replies  []*Reply
		readOnly bool
		need     int
		want     string
		agreeing int
		ok       bool
	}{
		{"q matching", []*Reply{ro(0, "a"), ro(1, "a"), ro(2, "a")}, true, 3, "a", 3, true},
		{"q-1 matching", []*Reply{ro(0, "a"), ro(1, "a"), ro(2, "b"), ro(3, "b")}, true, 3, "", 2, false},
		{"one replica counted once", []*Reply{ro(0, "a"), ro(0, "a"), ro(0, "a"), ro(1, "a")}, true, 3, "", 2, false},
		{"a replica's latest reply counts", []*Reply{ro(0, "b"), ro(1, "a"), ro(2, "a"), ro(0, "a")}, true, 3, "a", 3, true},
		{"ordered replies do not count for a read", []*Reply{ro(0, "a"), ordered(1, "a"), ro(2, "a")}, true, 3, "", 2, false},
		{"read-only replies do not count for a write", []*Reply{ordered(0, "OK"), ro(1, "OK"), ordered(2, "OK")}, false, 3, "", 2, false},
		{"majority among more", []*Reply{ro(0, "a"), ro(1, "b"), ro(2, "a"), ro(3, "a"), ro(4, "a")}, true, 4, "a", 4, true},
		{"f+1 accepts what q refuses", []*Reply{ordered(0, "x"), ordered(2, "x")}, false, 2, "x", 2, true},
		{"nil replies ignored", []*Reply{nil, ro(1, "a")}, true, 1, "a", 1, true},
		{"no replies", nil, true, 1, "", 0, false},
		{"need below one never accepts", []*Reply{ro(0, "a")}, true, 0, "", 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, agreeing, ok := AcceptReplies(c.replies, c.readOnly, c.need)
			if ok != c.ok || agreeing != c.agreeing || string(got) != c.want {
				t.Fatalf("AcceptReplies = %q, %d, %v; want %q, %d, %v", got, agreeing, ok, c.want, c.agreeing, c.ok)
			}
		})
	}
}

func TestReadOnlyWireFormat(t *testing.T) {
	ordered := &Request{Gateway: "gw", Client: "c", Timestamp: 7, Op: []byte("get x"), Auth: []byte{1, 2}}
	read := *ordered
	read.ReadOnly = true
	// An ordered request encodes exactly as before read-only requests existed.
	legacy := appendRequest([]byte{byte(KindRequest)}, ordered)
	if !bytes.Equal(Marshal(ordered), legacy) {
		t.Fatalf("ordered request encoding changed")
	}
	if bytes.Equal(Marshal(&read), legacy) {
		t.Fatalf("the read-only flag is not on the wire")
	}
	for _, m := range []Message{ordered, &read,
		&Reply{View: 2, Seq: 9, Client: "c", Timestamp: 7, Replica: 3, Result: []byte("v")},
		&Reply{View: 2, Seq: 9, Client: "c", Timestamp: 7, Replica: 3, Result: []byte("v"), ReadOnly: true}} {
		b := Marshal(m)
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if !bytes.Equal(Marshal(got), b) || fmt.Sprint(got) != fmt.Sprint(m) {
			t.Fatalf("round trip: %+v became %+v", m, got)
		}
		// Any byte but the flag after the message is refused: the encoding stays canonical.
		for _, tail := range [][]byte{{0}, {2}, {readOnlyFlag, readOnlyFlag}} {
			if _, err := Unmarshal(append(slices.Clip(b), tail...)); !errors.Is(err, ErrDecode) {
				if !(tail[0] == readOnlyFlag && len(tail) == 1 && !isReadOnly(m)) {
					t.Fatalf("%+v with %v appended: err %v, want ErrDecode", m, tail, err)
				}
			}
		}
	}
	// A read-only request inside a batch cannot be expressed: the flag is dropped there, so
	// a batch never carries one.
	pp := &PrePrepare{View: 0, Seq: 1, Batch: []*Request{&read}}
	got, err := Unmarshal(Marshal(pp))
	if err != nil || got.(*PrePrepare).Batch[0].ReadOnly {
		t.Fatalf("pre-prepare round trip: %v, %+v", err, got)
	}
	// The digest an authenticator covers (of the request alone) covers the flag, and an
	// ordered request's is what it was.
	if BatchDigest([]*Request{ordered}) == BatchDigest([]*Request{&read}) {
		t.Fatalf("the request digest does not cover the read-only flag")
	}
	if want := sha256.Sum256(appendRequestDigestInput(ordered)); BatchDigest([]*Request{ordered}) != want {
		t.Fatalf("an ordered request's digest changed")
	}
}

// appendRequestDigestInput is the digest input of a batch of r alone, as it was before
// read-only requests existed.
func appendRequestDigestInput(r *Request) []byte {
	b := appendUvarint(nil, 1)
	b = appendString(b, r.Gateway)
	b = appendString(b, r.Client)
	b = appendUvarint(b, r.Timestamp)
	return appendBytes(b, r.Op)
}

// readOnlySamples are fuzz seeds: a read-only request and reply. (They are not among
// sampleMessages: without its last byte, the flag, each is a valid ordered message.)
func readOnlySamples() []Message {
	return []Message{
		&Request{Gateway: "gw", Client: "c1", Timestamp: 8, Op: []byte("get x"), Auth: []byte{1, 2}, ReadOnly: true},
		&Reply{View: 1, Seq: 2, Client: "c1", Timestamp: 8, Replica: 1, Result: []byte("1"), ReadOnly: true},
	}
}

func isReadOnly(m Message) bool {
	switch m := m.(type) {
	case *Request:
		return m.ReadOnly
	case *Reply:
		return m.ReadOnly
	}
	return false
}

// noClassifier is an application that does not implement ReadOnlyClassifier.
type noClassifier struct{ a *regApp }

func (n noClassifier) Execute(op []byte) []byte { return n.a.Execute(op) }
func (n noClassifier) Snapshot() []byte         { return n.a.Snapshot() }
func (n noClassifier) Restore(b []byte) error   { return n.a.Restore(b) }

func TestReadOnlyStep(t *testing.T) {
	cases := []struct {
		name    string
		plain   bool // the application has no classifier
		from    int
		op      string
		wantErr error
		result  string // "" means no reply
	}{
		{"a get is answered from the state", false, FromClient, "get x", nil, "1"},
		{"a write flagged read-only is refused", false, FromClient, "set x=2", ErrNotReadOnly, NotReadOnlyResult},
		{"an application without a classifier refuses", true, FromClient, "get x", ErrNotReadOnly, NotReadOnlyResult},
		{"a replica may not relay one", false, 2, "get x", ErrRejected, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			net := newRONet(t, 4, func(i int) Application {
				if c.plain {
					return noClassifier{newRegApp()}
				}
				return nil
			})
			net.write(1, "set x=1")
			net.run()
			r := net.reps[1]
			before, exec := r.StateDigest(), r.LastExecuted()
			err := r.Step(c.from, &Request{Gateway: "gw", Client: "c", Timestamp: 2, Op: []byte(c.op), ReadOnly: true})
			if !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
				t.Fatalf("Step = %v, want %v", err, c.wantErr)
			}
			rd := r.Ready()
			if r.StateDigest() != before || r.LastExecuted() != exec || len(rd.Persist) > 0 || len(rd.Executed) > 0 {
				t.Fatalf("a read-only request changed the replica: executed %d, %d records", len(rd.Executed), len(rd.Persist))
			}
			if c.result == "" {
				if len(rd.Messages) != 0 {
					t.Fatalf("sent %d messages, want none", len(rd.Messages))
				}
				return
			}
			if len(rd.Messages) != 1 {
				t.Fatalf("sent %d messages, want one reply", len(rd.Messages))
			}
			o := rd.Messages[0]
			rep, ok := o.Msg.(*Reply)
			if !ok || o.To != ToGateway || o.Gateway != "gw" {
				t.Fatalf("sent %+v, want a reply to gw", o)
			}
			want := Reply{View: 0, Seq: exec, Client: "c", Timestamp: 2, Replica: 1, Result: []byte(c.result), ReadOnly: true}
			if fmt.Sprint(*rep) != fmt.Sprint(want) {
				t.Fatalf("reply %+v, want %+v", *rep, want)
			}
			if _, _, ordered, _ := r.Lookup("c", 2); ordered || r.Stale("c", 2) {
				t.Fatalf("a read-only request entered the client table")
			}
			if c.plain {
				return
			}
			// Nothing was cached or queued: the same id still orders and executes as a write.
			net.write(2, "set x=3")
			net.run()
			if res, _, ok := AcceptReplies(net.repliesTo(2), false, net.q.N); !ok || string(res) != "OK" || string(net.apps[1].Execute([]byte("get x"))) != "3" {
				t.Fatalf("the id of a read-only request did not order as a write: %q, %v", res, ok)
			}
		})
	}
}

func TestPrePrepareWithReadOnlyRequestRefused(t *testing.T) {
	net := newRONet(t, 4, nil)
	batch := []*Request{{Gateway: "gw", Client: "c", Timestamp: 1, Op: []byte("get x"), ReadOnly: true}}
	err := net.reps[1].Step(0, &PrePrepare{View: 0, Seq: 1, Digest: BatchDigest(batch), Batch: batch})
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("Step = %v, want ErrRejected", err)
	}
}

// roNet delivers messages between replicas in FIFO order, except that messages a hold
// rule matches stay queued until the rule is released: a deterministic adversarial
// network. Replies go to one gateway, "gw"; a liar replica answers read-only requests
// from a copy of its state taken earlier (a Byzantine replica that executed a write but
// pretends it did not).
type roNet struct {
	t       *testing.T
	q       Quorum
	reps    []*Replica
	apps    []*regApp
	queue   []roMsg
	hold    map[int]func(Message) bool // per receiving replica
	replies []*Reply
	liar    int
	liarApp *regApp // the liar's old state, nil while it is honest
}

type roMsg struct {
	to, from int
	m        Message
}

func newRONet(t *testing.T, n int, app func(i int) Application) *roNet {
	net := &roNet{t: t, q: NewQuorum(n), hold: map[int]func(Message) bool{}, liar: -1}
	for i := 0; i < n; i++ {
		c := DefaultConfig()
		c.ID, c.N = i, n
		a := newRegApp()
		c.App = a
		if app != nil {
			if x := app(i); x != nil {
				c.App = x
			}
		}
		r, err := NewReplica(c)
		if err != nil {
			t.Fatal(err)
		}
		net.reps, net.apps = append(net.reps, r), append(net.apps, a)
	}
	return net
}

// write sends an ordered request to every replica, as a client does.
func (net *roNet) write(ts uint64, op string) {
	for _, r := range net.reps {
		_ = r.Step(FromClient, &Request{Gateway: "gw", Client: "c", Timestamp: ts, Op: []byte(op)})
		net.collect(r)
	}
}

// read sends a read-only request to every replica and returns their replies.
func (net *roNet) read(ts uint64, op string) []*Reply {
	from := len(net.replies)
	for _, r := range net.reps {
		if err := r.Step(FromClient, &Request{Gateway: "gw", Client: "c", Timestamp: ts, Op: []byte(op), ReadOnly: true}); err != nil {
			net.t.Fatalf("replica %d: %v", r.ID(), err)
		}
		net.collect(r)
	}
	return net.replies[from:]
}

func (net *roNet) collect(r *Replica) {
	r.Propose()
	for _, o := range r.Ready().Messages {
		switch o.To {
		case ToGateway:
			rep := *o.Msg.(*Reply)
			if rep.ReadOnly && rep.Replica == net.liar && net.liarApp != nil {
				rep.Result = net.liarApp.Execute([]byte("get x"))
			}
			net.replies = append(net.replies, &rep)
		case Broadcast:
			for j := range net.reps {
				if j != r.ID() {
					net.queue = append(net.queue, roMsg{to: j, from: r.ID(), m: o.Msg})
				}
			}
		default:
			net.queue = append(net.queue, roMsg{to: o.To, from: r.ID(), m: o.Msg})
		}
	}
}

// run delivers every message no hold rule matches, until none is left.
func (net *roNet) run() {
	for {
		i := slices.IndexFunc(net.queue, func(m roMsg) bool { h := net.hold[m.to]; return h == nil || !h(m.m) })
		if i < 0 {
			return
		}
		m := net.queue[i]
		net.queue = slices.Delete(net.queue, i, i+1)
		_ = net.reps[m.to].Step(m.from, m.m)
		net.collect(net.reps[m.to])
	}
}

func (net *roNet) repliesTo(ts uint64) []*Reply {
	var out []*Reply
	for _, r := range net.replies {
		if r.Timestamp == ts {
			out = append(out, r)
		}
	}
	return out
}

func isCommit(m Message) bool { _, ok := m.(*Commit); return ok }
func everything(Message) bool { return true }

// TestStaleReadImpossible shows the linearizability condition of the read-only
// optimisation (TOCS §5.1.3): x is "old", a client writes x = "new" and the write is
// acknowledged at writeNeed matching replies, while the network holds back the honest
// replicas that have not executed it (lagging: their commits or everything held) for as
// long as the acknowledgement allows, and one Byzantine replica that did execute it
// answers reads from its old state. A read-only get of x, accepted at q matching replies
// and falling back to an ordered get otherwise, must return "new". With writes accepted
// at f+1 (or, at n = 5, with 2f+1 = 3 instead of q = 4) the same schedule returns "old".
func TestStaleReadImpossible(t *testing.T) {
	cases := []struct {
		name                string
		n                   int
		writeNeed, readNeed int
		hold                map[int]func(Message) bool
		release             []int // the order the adversary must release held replicas in to get the write acknowledged
		want                string
		ordered             bool
	}{
		{"n=4 writes at q", 4, 3, 3, map[int]func(Message) bool{1: isCommit, 3: everything}, []int{1, 3}, "new", true},
		{"n=4 writes at f+1: stale", 4, 2, 3, map[int]func(Message) bool{1: isCommit, 3: everything}, []int{1, 3}, "old", false},
		{"n=4 no write in flight", 4, 3, 3, nil, nil, "new", false},
		{"n=5 writes at q=4", 5, 4, 4, map[int]func(Message) bool{1: isCommit, 3: isCommit, 4: everything}, []int{1, 3, 4}, "new", true},
		{"n=5 writes at f+1: stale", 5, 2, 4, map[int]func(Message) bool{1: isCommit, 3: isCommit, 4: everything}, []int{1, 3, 4}, "old", false},
		{"n=5 reads and writes at 2f+1=3: stale", 5, 3, 3, map[int]func(Message) bool{1: isCommit, 3: isCommit, 4: everything}, []int{1, 3, 4}, "old", false},
		{"n=5 no write in flight", 5, 4, 4, nil, nil, "new", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			net := newRONet(t, c.n, nil)
			net.write(1, "set x=old")
			net.run()
			if res, _, ok := AcceptReplies(net.repliesTo(1), false, c.n); !ok || string(res) != "OK" {
				t.Fatalf("the first write did not execute everywhere")
			}
			// Replica 2, a backup that executes the write, is Byzantine: it reads from now on
			// from the state before the write.
			net.liar, net.liarApp = 2, net.apps[2].clone()
			for i, h := range c.hold {
				net.hold[i] = h
			}
			net.write(2, "set x=new")
			net.run()
			release := c.release
			for {
				if _, _, ok := AcceptReplies(net.repliesTo(2), false, c.writeNeed); ok {
					break
				}
				if len(release) == 0 {
					t.Fatalf("the write was never acknowledged")
				}
				delete(net.hold, release[0])
				release = release[1:]
				net.run()
			}
			// Acknowledged: from now on the adversary delivers nothing between replicas.
			got, _, ok := AcceptReplies(net.read(3, "get x"), true, c.readNeed)
			ordered := !ok
			if ordered {
				clear(net.hold)
				net.write(4, "get x")
				net.run()
				if got, _, ok = AcceptReplies(net.repliesTo(4), false, c.writeNeed); !ok {
					t.Fatalf("the ordered read got no %d matching replies", c.writeNeed)
				}
			}
			if string(got) != c.want || ordered != c.ordered {
				t.Fatalf("read %q (ordered %v), want %q (ordered %v)", got, ordered, c.want, c.ordered)
			}
		})
	}
}
