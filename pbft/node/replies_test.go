package node

import (
	"bytes"
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
