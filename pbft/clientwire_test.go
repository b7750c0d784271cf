package pbft

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"
)

// encodeReplies is the replies message DecodeReplies reads (pbft/node writes it).
func encodeReplies(reps []*Reply) []byte {
	b := binary.AppendUvarint(nil, uint64(len(reps)))
	for _, r := range reps {
		m := Marshal(r)
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	return b
}

// TestDecodeRepliesDecodesAsUnmarshal: the replies of a message decode into one
// allocation exactly as each alone would, and a malformed one is an error.
func TestDecodeRepliesDecodesAsUnmarshal(t *testing.T) {
	var in []*Reply
	for i := range 35 {
		in = append(in, &Reply{View: 1, Seq: uint64(7 + i/10), Client: fmt.Sprint("load", i), Timestamp: uint64(1<<60 + i),
			Replica: 2, Result: []byte("OK"), Conf: uint64(i % 2), ReadOnly: i%3 == 0})
	}
	data := encodeReplies(in)
	out, err := DecodeReplies(data)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range out {
		alone, err := Unmarshal(Marshal(in[i]))
		if err != nil || !reflect.DeepEqual(r, alone) || !reflect.DeepEqual(r, in[i]) {
			t.Fatalf("reply %d: %+v, alone %+v (%v), sent %+v", i, r, alone, err, in[i])
		}
	}
	// The reply structs share one allocation; each client name is its own.
	if a := testing.AllocsPerRun(20, func() { _, _ = DecodeReplies(data) }); a > float64(len(in)+2) {
		t.Errorf("%v allocations for %d replies, want at most %d", a, len(in), len(in)+2)
	}
	bad := [][]byte{
		nil,
		{1},                                    // a count and nothing
		{0xff, 0xff, 0x03, 1, 5},               // a count far past the bytes
		encodeReplies([]*Reply{in[0]})[:5],     // cut short
		append(encodeReplies(in[:1]), 0),       // trailing byte
		append([]byte{1, 1}, byte(KindCommit)), // another kind
	}
	commit := Marshal(&Commit{View: 1, Seq: 2, Replica: 1})
	bad = append(bad, append(binary.AppendUvarint([]byte{1}, uint64(len(commit))), commit...))
	for _, b := range bad {
		if rs, err := DecodeReplies(b); err == nil {
			t.Errorf("DecodeReplies(%x) = %v, want an error", b, rs)
		}
	}
}
