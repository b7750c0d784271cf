package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft"
)

// TestSendBundlesByDestination: a Ready's messages for one destination go as one
// bundle, in order, each element the framed message it would have been alone; a
// destination with one message gets it alone, as does a message too large to bundle,
// in its place in the order; and every message is counted as sent under its own kind.
func TestSendBundlesByDestination(t *testing.T) {
	n, sink, keys := newSinkNode(t)
	big := &pbft.Request{Client: "c", Timestamp: 1, Op: bytes.Repeat([]byte("x"), maxBundledMessage)}
	outs := []pbft.Outbound{
		{To: pbft.Broadcast, Msg: &pbft.Prepare{View: 0, Seq: 1, Digest: pbft.Digest{1}}},
		{To: 1, Msg: &pbft.Commit{View: 0, Seq: 1, Digest: pbft.Digest{2}}},
		{To: pbft.Broadcast, Msg: &pbft.Prepare{View: 0, Seq: 2, Digest: pbft.Digest{3}}},
		{To: 2, Msg: &pbft.Commit{View: 0, Seq: 2, Digest: pbft.Digest{4}}},
		{To: pbft.Broadcast, Msg: big},
		{To: 1, Msg: &pbft.Commit{View: 0, Seq: 3, Digest: pbft.Digest{5}}},
		{To: pbft.Broadcast, Msg: &pbft.Commit{View: 0, Seq: 3, Digest: pbft.Digest{6}}},
	}
	n.send(append([]pbft.Outbound(nil), outs...), FaultNone)
	type want struct {
		to, kind string
		msgs     []pbft.Message
	}
	wants := []want{
		// Every replica's messages, in order: a bundle, the large one alone in its
		// place, and the lone one left after it as itself.
		{"", KindBundle, []pbft.Message{outs[0].Msg, outs[2].Msg}},
		{"", big.Kind().String(), []pbft.Message{big}},
		{"", "commit", []pbft.Message{outs[6].Msg}},
		{"n2", KindBundle, []pbft.Message{outs[1].Msg, outs[5].Msg}},
		{"n3", "commit", []pbft.Message{outs[3].Msg}},
	}
	if len(sink.sent) != len(wants) {
		t.Fatalf("%d bus messages, want %d: %+v", len(sink.sent), len(wants), sink.sent)
	}
	for i, w := range wants {
		s := sink.sent[i]
		if s.to != w.to || s.kind != w.kind {
			t.Fatalf("bus message %d: to %q kind %q, want to %q kind %q", i, s.to, s.kind, w.to, w.kind)
		}
		receiver := map[string]string{"": "n4", "n2": "n2", "n3": "n3"}[s.to]
		payload, err := keys[receiver].Open("n1", s.kind, s.data)
		if err != nil {
			t.Fatalf("bus message %d: %s cannot open it: %v", i, receiver, err)
		}
		var got [][]byte
		if s.kind == KindBundle {
			if err := SplitBundle(payload, func(e []byte) { got = append(got, e) }); err != nil {
				t.Fatalf("bus message %d: %v", i, err)
			}
		} else {
			got = [][]byte{payload}
		}
		if len(got) != len(w.msgs) {
			t.Fatalf("bus message %d: %d messages, want %d", i, len(got), len(w.msgs))
		}
		for j, m := range w.msgs {
			if wire := frame(0, pbft.Marshal(m)); !bytes.Equal(got[j], wire) {
				t.Errorf("bus message %d, element %d: %x, want %x", i, j, got[j], wire)
			}
		}
	}
	if st := n.Stats(); st.Out["commit"] != 4 || st.Out["prepare"] != 2 || st.Out[big.Kind().String()] != 1 {
		t.Errorf("sent by kind %v, want 4 commits, 2 prepares, 1 %s", st.Out, big.Kind())
	}
}

// TestBundleStepsEachElement: each element of a bundle is stepped as if it had come
// alone, in order; an element that is not a replica's framed message is refused alone,
// and a broken length refuses the rest of the bundle.
func TestBundleStepsEachElement(t *testing.T) {
	n, _, keys := newSinkNode(t) // n1, the primary of view 0
	element := func(m pbft.Message) []byte { return frame(0, pbft.Marshal(m)) }
	var payload []byte
	for _, e := range [][]byte{
		element(&pbft.Prepare{View: 0, Seq: 1, Digest: pbft.Digest{1}, Replica: 1}),
		pbft.Marshal(&pbft.Prepare{View: 0, Seq: 2, Digest: pbft.Digest{1}, Replica: 1}), // unframed
		element(&pbft.Commit{View: 0, Seq: 1, Digest: pbft.Digest{1}, Replica: 1}),
	} {
		payload = binary.AppendUvarint(payload, uint64(len(e)))
		payload = append(payload, e...)
	}
	payload = append(payload, 0x7f) // a length past the end
	n.handle(&item{msg: bus.Message{From: "n2", Kind: KindBundle, Data: keys["n2"].Seal("n1", KindBundle, payload)}})
	st := n.Stats()
	if st.In["prepare"] != 1 || st.In["commit"] != 1 {
		t.Errorf("stepped %v, want one prepare and one commit", st.In)
	}
	if st.Rejected[RejectMalformed] != 2 {
		t.Errorf("rejected %v, want 2 malformed (the unframed element, the broken length)", st.Rejected)
	}
	// A bundle from a replica outside the configuration steps nothing.
	n.handle(&item{msg: bus.Message{From: "gw", Kind: KindBundle, Data: keys["gw"].Seal("n1", KindBundle, payload[:len(payload)-1])}})
	if st := n.Stats(); st.In["prepare"] != 1 || st.In["commit"] != 1 {
		t.Errorf("a non-member's bundle was stepped: %v", st.In)
	}
}

func TestSplitBundleRefuses(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		{0},          // an empty element
		{5, 1, 2},    // past the end
		{0x80},       // a varint cut short
		{1, 9, 0x02}, // a good element, then one past the end
	} {
		if err := SplitBundle(b, func([]byte) {}); !errors.Is(err, errBundle) {
			t.Errorf("%x: err %v, want errBundle", b, err)
		}
	}
}

// FuzzSplitBundle: splitting never panics, hands over only non-empty elements that lie
// end to end from the start, and either consumes the whole input or says why not.
func FuzzSplitBundle(f *testing.F) {
	f.Add([]byte{2, 'a', 'b', 1, 'c'})
	f.Add([]byte{0x80, 0x80, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		end := 0 // where the last element handed over ends in b
		err := SplitBundle(b, func(e []byte) {
			start := cap(b) - cap(e) // e is a window of b
			size, k := binary.Uvarint(b[end:])
			if len(e) == 0 || k <= 0 || end+k != start || size != uint64(len(e)) {
				t.Fatalf("element at %d (%d bytes) does not follow the one ending at %d", start, len(e), end)
			}
			end = start + len(e)
		})
		if (err == nil) != (len(b) > 0 && end == len(b)) {
			t.Fatalf("err %v after consuming %d of %d bytes", err, end, len(b))
		}
	})
}

// TestBundlesFitTheBus: on a bus that takes little, bundles are cut to fit it, and
// every message still goes, once, in order.
func TestBundlesFitTheBus(t *testing.T) {
	n, sink, keys := newSinkNode(t)
	const limit = 8 << 10
	n.groups.limits(limit)
	var outs []pbft.Outbound
	for i := range 300 {
		outs = append(outs, pbft.Outbound{To: pbft.Broadcast, Msg: &pbft.Prepare{View: 0, Seq: uint64(i + 1), Digest: pbft.Digest{byte(i)}}})
	}
	n.send(append([]pbft.Outbound(nil), outs...), FaultNone)
	next := 0
	for i, s := range sink.sent {
		if len(s.data) > limit {
			t.Fatalf("bus message %d: %d bytes on a bus that takes %d", i, len(s.data), limit)
		}
		payload, err := keys["n2"].Open("n1", s.kind, s.data)
		if err != nil {
			t.Fatal(err)
		}
		if err := SplitBundle(payload, func(e []byte) {
			if want := frame(0, pbft.Marshal(outs[next].Msg)); !bytes.Equal(e, want) {
				t.Fatalf("element %d is not message %d", next, next)
			}
			next++
		}); err != nil {
			t.Fatal(err)
		}
	}
	if next != len(outs) || len(sink.sent) < 2 {
		t.Fatalf("%d of %d messages in %d bus messages", next, len(outs), len(sink.sent))
	}
}
