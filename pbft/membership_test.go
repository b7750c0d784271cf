package pbft

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
)

func TestMembershipEncoding(t *testing.T) {
	m := Membership{Conf: 3, Members: []string{"n2", "n1", "x"}}
	got, err := DecodeMembership(EncodeMembership(m))
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	for _, bad := range [][]string{nil, {}, {"a", "a"}, {"a", ""}} {
		if _, err := DecodeMembership(EncodeMembership(Membership{Members: bad})); !errors.Is(err, ErrMembership) {
			t.Fatalf("%q: %v, want ErrMembership", bad, err)
		}
	}
	op := ReconfigOp(Membership{Conf: 2, Members: []string{"a", "c", "d"}}, []string{"a", "b"})
	if !IsReconfig(op) || IsReconfig([]byte("set x=1")) {
		t.Fatal("IsReconfig")
	}
	if m, err := DecodeReconfigOp(op); err != nil || m.Conf != 2 || len(m.Members) != 2 {
		t.Fatalf("DecodeReconfigOp: %v, %v", m, err)
	}
	if ends, next, err := DecodeReconfigChange(op); err != nil || ends.Conf != 2 || !slices.Equal(ends.Members, []string{"a", "c", "d"}) ||
		!slices.Equal(next.Members, []string{"a", "b"}) {
		t.Fatalf("DecodeReconfigChange: %v %v %v", ends, next, err)
	}
	for _, bad := range [][]byte{op[:len(op)-1], append(slices.Clone(op), 0), ReconfigOp(Membership{Members: []string{"a", "a"}}, []string{"b"}),
		[]byte(ReconfigPrefix), []byte("set x=1")} {
		if _, _, err := DecodeReconfigChange(bad); err == nil {
			t.Fatalf("DecodeReconfigChange(%q) accepted", bad)
		}
	}
	if _, ok := DecodeReconfigResult([]byte(ReconfigRefusedPrefix + "no")); ok {
		t.Fatal("a refusal decoded as a reconfiguration")
	}
	if m, ok := DecodeReconfigResult(reconfigOKResult(Membership{Conf: 1, Members: []string{"a"}})); !ok || m.Conf != 1 {
		t.Fatalf("DecodeReconfigResult: %v %v", m, ok)
	}
}

func TestReplyCarriesItsConfiguration(t *testing.T) {
	for _, rep := range []*Reply{{Client: "c", Result: []byte("r"), Conf: 5}, {Client: "c", ReadOnly: true, Conf: 1}, {Client: "c"}} {
		m, err := Unmarshal(Marshal(rep))
		if err != nil || !reflect.DeepEqual(m, rep) {
			t.Fatalf("%+v: %+v, %v", rep, m, err)
		}
	}
	// Configuration 0 is never written out: a reply of a cluster that never
	// reconfigured encodes as before.
	if b := Marshal(&Reply{Client: "c"}); b[len(b)-1] == confFlag {
		t.Fatal("configuration 0 written out")
	}
}

// FuzzDecodeMembership: DecodeMembership never panics; what decodes re-encodes to the
// input (canonical, up to overlong varints) and is a valid member list.
func FuzzDecodeMembership(f *testing.F) {
	f.Add(EncodeMembership(Membership{Conf: 1, Members: []string{"n1", "n2"}}))
	f.Add([]byte{0, 2, 1, 'a', 1, 'a'})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMembership(data)
		if err != nil {
			return
		}
		if ValidateMembers(m.Members) != nil {
			t.Fatalf("invalid members decoded: %q", m.Members)
		}
		b := EncodeMembership(m)
		if len(b) > len(data) || len(b) == len(data) && !bytes.Equal(b, data) {
			t.Fatalf("re-encoding %x of %x is not canonical", b, data)
		}
	})
}

// FuzzDecodeReconfigChange: a reconfiguration's operation (a joiner reads it to learn
// whom to trust) never panics the decoder, and one that decodes is two valid lists and
// re-encodes canonically (no longer, and the same bytes when as long: varints may have
// been written long).
func FuzzDecodeReconfigChange(f *testing.F) {
	f.Add(ReconfigOp(Membership{Conf: 3, Members: []string{"n1", "n2"}}, []string{"n2", "n3"}))
	f.Add([]byte(ReconfigPrefix + "\x00\x01\x01a\x01\x01a"))
	f.Add([]byte(ReconfigPrefix))
	f.Fuzz(func(t *testing.T, data []byte) {
		ends, next, err := DecodeReconfigChange(data)
		if err != nil {
			return
		}
		if ValidateMembers(ends.Members) != nil || ValidateMembers(next.Members) != nil || ends.Conf != next.Conf {
			t.Fatalf("invalid change decoded: %v %v", ends, next)
		}
		if b := ReconfigOp(ends, next.Members); len(b) > len(data) || len(b) == len(data) && !bytes.Equal(b, data) {
			t.Fatalf("re-encoding %x of %x differs", b, data)
		}
	})
}

// FuzzDecodeSnapshot: a snapshot from a peer (state transfer) never panics the decoder,
// and one that decodes re-encodes to the same bytes, configuration included.
func FuzzDecodeSnapshot(f *testing.F) {
	next := Membership{Conf: 2, Members: []string{"a", "b"}}
	f.Add(encodeSnapshot([]byte("app"), newClientTable(4), configState{cur: Membership{Conf: 1, Members: []string{"a"}}, next: &next, nextSeq: 9}))
	f.Add(encodeSnapshot(nil, newClientTable(4), configState{}))
	f.Fuzz(func(t *testing.T, data []byte) {
		app, clients, conf, err := decodeSnapshot(data, 4)
		if err != nil {
			return
		}
		b := encodeSnapshot(app, clients, conf)
		if conf.legacy {
			return // written before configurations: re-encoded with one
		}
		if len(b) > len(data) {
			t.Fatalf("re-encoding grew: %x of %x", b, data)
		}
	})
}

// A snapshot from a durable log written before configurations were replicated restores,
// and the replica keeps the membership it was started with.
func TestLegacySnapshotRestores(t *testing.T) {
	c := DefaultConfig()
	c.ID, c.N, c.Members, c.App = 1, 4, []string{"a", "b", "c", "d"}, &chainApp{}
	r, err := NewReplica(c)
	if err != nil {
		t.Fatal(err)
	}
	app := &chainApp{}
	app.Execute([]byte("x"))
	legacy := newClientTable(4).appendSnapshot(appendBytes(nil, app.Snapshot()))
	if err := r.installSnapshot(legacy); err != nil {
		t.Fatal(err)
	}
	if r.Configuration() != 0 || len(r.Members()) != 4 || r.ID() != 1 || r.apps() != app.state {
		t.Fatalf("after a legacy snapshot: configuration %d, members %v, id %d", r.Configuration(), r.Members(), r.ID())
	}
}

func (r *Replica) apps() [32]byte { return r.app.(*chainApp).state }
