package node

import (
	"bytes"
	"testing"

	"github.com/pbft-nats/pbft/pbft"
)

func TestFrameCarriesTheConfiguration(t *testing.T) {
	msg := pbft.Marshal(&pbft.Prepare{View: 1, Seq: 2, Replica: 3})
	conf, framed, rest, err := unframe(frame(7, msg))
	if err != nil || !framed || conf != 7 || !bytes.Equal(rest, msg) {
		t.Fatalf("unframe(frame(7, m)) = %d, %v, %x, %v", conf, framed, rest, err)
	}
	// A client's request goes bare: no kind byte is the mark.
	req := pbft.Marshal(&pbft.Request{Gateway: "g", Client: "c", Timestamp: 1})
	if _, framed, rest, err := unframe(req); framed || err != nil || !bytes.Equal(rest, req) {
		t.Fatalf("a bare request read as framed")
	}
	if _, _, _, err := unframe([]byte{confMark, 0x80}); err == nil {
		t.Fatal("a cut configuration number decoded")
	}
}

// FuzzUnframe: unframe never panics, and what it reads as framed frames back to the
// same bytes (up to overlong varints, which only shrink).
func FuzzUnframe(f *testing.F) {
	f.Add(frame(3, pbft.Marshal(&pbft.Commit{Seq: 1})))
	f.Add([]byte{confMark})
	f.Add([]byte{byte(pbft.KindRequest), 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		conf, framed, rest, err := unframe(data)
		if err != nil || !framed {
			return
		}
		if again := frame(conf, rest); len(again) > len(data) || !bytes.HasSuffix(data, rest) {
			t.Fatalf("frame(%d, %x) = %x, from %x", conf, rest, again, data)
		}
	})
}
