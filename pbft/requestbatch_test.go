package pbft

import (
	"bytes"
	"testing"
)

func sampleRequests() []*Request {
	return []*Request{
		{Gateway: "gw", Client: "c1", Timestamp: 3, Op: []byte("get x"), Auth: bytes.Repeat([]byte{7}, 64), ReadOnly: true},
		{Gateway: "gw", Client: "c2", Timestamp: 9, Op: []byte("set y=1"), Auth: bytes.Repeat([]byte{8}, 64)},
		{Gateway: "gw", Client: "c1", Timestamp: 4, Op: bytes.Repeat([]byte("v"), 300)},
	}
}

func TestRequestsRoundTrip(t *testing.T) {
	in := sampleRequests()
	out, err := DecodeRequests(AppendRequests(nil, in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d requests back, want %d", len(out), len(in))
	}
	for i := range in {
		if !bytes.Equal(Marshal(in[i]), Marshal(out[i])) || out[i].ReadOnly != in[i].ReadOnly {
			t.Errorf("request %d: %+v, want %+v", i, out[i], in[i])
		}
	}
}

func TestRequestsRefuseDamage(t *testing.T) {
	good := AppendRequests(nil, sampleRequests())
	tooMany := appendUvarint(nil, MaxRequestsPerMessage+1)
	commit := Marshal(&Commit{})
	notRequest := append(appendUvarint(appendUvarint(nil, 1), uint64(len(commit))), commit...)
	for name, b := range map[string][]byte{
		"nothing":         nil,
		"empty batch":     {0},
		"cut short":       good[:len(good)-1],
		"trailing bytes":  append(bytes.Clone(good), 0),
		"length past end": {2, 1, 0},
		"too many":        tooMany,
		"a commit":        notRequest,
	} {
		if _, err := DecodeRequests(b); err == nil {
			t.Errorf("%s: DecodeRequests(%x) accepted", name, b)
		}
	}
}

func FuzzDecodeRequests(f *testing.F) {
	f.Add(AppendRequests(nil, sampleRequests()))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := DecodeRequests(b)
		if err != nil {
			return
		}
		again, err := DecodeRequests(AppendRequests(nil, rs))
		if err != nil || len(again) != len(rs) {
			t.Fatalf("re-encoding %d decoded requests: %v", len(rs), err)
		}
		for i := range rs {
			if !bytes.Equal(Marshal(rs[i]), Marshal(again[i])) {
				t.Fatalf("request %d changed in a round trip", i)
			}
		}
	})
}

// TestSmallestRequestsDecode: minFramedRequest is what the smallest request takes, so a
// message of only such requests still decodes whole.
func TestSmallestRequestsDecode(t *testing.T) {
	smallest := &Request{}
	reqs := []*Request{smallest, smallest, smallest}
	b := AppendRequests(nil, reqs)
	if want := 1 + len(reqs)*minFramedRequest; len(b) != want {
		t.Fatalf("%d bytes for %d smallest requests, want %d", len(b), len(reqs), want)
	}
	got, err := DecodeRequests(b)
	if err != nil || len(got) != len(reqs) {
		t.Fatalf("DecodeRequests: %d requests, %v", len(got), err)
	}
}
