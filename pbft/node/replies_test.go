package node

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pbft-nats/pbft/pbft"
)

func sampleReplies() []*pbft.Reply {
	return []*pbft.Reply{
		{View: 1, Seq: 7, Client: "c1", Timestamp: 3, Replica: 2, Result: []byte("OK")},
		{View: 1, Seq: 7, Client: "c2", Timestamp: 9, Replica: 2, Result: nil},
		{View: 1, Seq: 8, Client: "c1", Timestamp: 4, Replica: 2, Result: bytes.Repeat([]byte("v"), 300)},
	}
}

func TestRepliesRoundTrip(t *testing.T) {
	in := sampleReplies()
	out, err := DecodeReplies(EncodeReplies(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d replies back, want %d", len(out), len(in))
	}
	for i := range in {
		if !bytes.Equal(pbft.Marshal(in[i]), pbft.Marshal(out[i])) {
			t.Errorf("reply %d: %+v, want %+v", i, out[i], in[i])
		}
	}
}

func TestRepliesRefuseDamage(t *testing.T) {
	good := EncodeReplies(sampleReplies())
	for _, b := range [][]byte{nil, {0}, good[:len(good)-1], append(append([]byte{}, good...), 0), {2, 1, 0}} {
		if _, err := DecodeReplies(b); err == nil {
			t.Errorf("DecodeReplies(%x) accepted", b)
		}
	}
	notReply := append([]byte{1}, byte(len(pbft.Marshal(&pbft.Commit{}))))
	notReply = append(notReply, pbft.Marshal(&pbft.Commit{})...)
	if _, err := DecodeReplies(notReply); err == nil {
		t.Error("a commit among replies was accepted")
	}
}

func FuzzDecodeReplies(f *testing.F) {
	f.Add(EncodeReplies(sampleReplies()))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := DecodeReplies(b)
		if err != nil {
			return
		}
		again, err := DecodeReplies(EncodeReplies(rs))
		if err != nil || len(again) != len(rs) {
			t.Fatalf("re-encoding %d decoded replies: %v", len(rs), err)
		}
	})
}

// TestRepliesEncodingLayout: the encoding is the count, then each reply's own encoding
// after its length (a reply over 127 bytes has a two-byte length, which AppendReplies
// slides in front of the reply it encoded in place), appended after what the buffer held.
func TestRepliesEncodingLayout(t *testing.T) {
	in := sampleReplies()
	want := binary.AppendUvarint([]byte("prefix"), uint64(len(in)))
	for _, r := range in {
		one := pbft.Marshal(r)
		want = binary.AppendUvarint(want, uint64(len(one)))
		want = append(want, one...)
	}
	if got := pbft.AppendReplies([]byte("prefix"), in); !bytes.Equal(got, want) {
		t.Fatalf("AppendReplies:\n got %x\nwant %x", got, want)
	}
}

// TestReplyBatchSendReusesBuffers: replies of one Ready to one gateway leave as one
// replies message that opens at the gateway as the replies sent, and once the node's
// buffers have grown, grouping and sending them allocates nothing (the groups, the
// batch, its encoding and its envelope were allocated at every Ready).
func TestReplyBatchSendReusesBuffers(t *testing.T) {
	n, sink, keys := newSinkNode(t)
	in := sampleReplies()
	msgs := make([]pbft.Outbound, len(in))
	for i, r := range in {
		msgs[i] = pbft.Outbound{To: pbft.ToGateway, Gateway: "gw", Msg: r}
	}
	// send hands the slice back to the replica (Recycle), which clears it: each send
	// gets a copy of the messages.
	buf := make([]pbft.Outbound, len(msgs))
	copy(buf, msgs)
	n.send(buf, FaultNone)
	if len(sink.sent) != 1 || sink.sent[0].kind != KindReplies || sink.sent[0].to != "gw" {
		t.Fatalf("sent %+v, want one %s message to gw", sink.sent, KindReplies)
	}
	payload, err := keys["gw"].Open("n1", KindReplies, sink.sent[0].data)
	if err != nil {
		t.Fatal(err)
	}
	if want := pbft.EncodeReplies(in); !bytes.Equal(payload, want) {
		t.Fatalf("payload %x, want %x", payload, want)
	}
	if raceEnabled {
		return // the race detector drops the keyring's pooled HMACs at random
	}
	sink.keep = false
	if a := testing.AllocsPerRun(100, func() { copy(buf, msgs); n.send(buf, FaultNone) }); a != 0 {
		t.Errorf("%v allocations per Ready of %d replies, want 0", a, len(msgs))
	}
}
