package pbft

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
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
	readOnly := Marshal(&Request{Client: "c", Op: []byte("get x"), ReadOnly: true})
	plain := Marshal(&Request{Client: "c", Op: []byte("set x=1")})
	for name, b := range map[string][]byte{
		"nothing":         nil,
		"empty batch":     {0},
		"cut short":       good[:len(good)-1],
		"trailing bytes":  append(bytes.Clone(good), 0),
		"length past end": {2, 1, 0},
		"too many":        tooMany,
		"a commit":        notRequest,
		// The checks DecodeRequests makes itself, as Unmarshal does for one request.
		"a kind byte alone":               framed([]byte{byte(KindRequest)}),
		"a byte after the read-only flag": framed(append(bytes.Clone(readOnly), 1)),
		"a read-only flag of 2":           framed(append(bytes.Clone(plain), 2)),
		"a client name of 1025 bytes":     framed(Marshal(&Request{Client: strings.Repeat("c", maxStringLen+1)})),
		"more requests than bytes":        append(appendUvarint(nil, 64), framed(plain)[1:]...),
	} {
		if _, err := DecodeRequests(b); err == nil {
			t.Errorf("%s: DecodeRequests(%x) accepted", name, b)
		}
	}
}

// framed is a requests message of the given encoded entries, whatever they hold.
func framed(entries ...[]byte) []byte {
	b := appendUvarint(nil, uint64(len(entries)))
	for _, e := range entries {
		b = appendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b
}

// decodeRequestsByUnmarshal is DecodeRequests as it was first written: each entry through
// Unmarshal. DecodeRequests decodes in place (one allocation for all), and must accept and
// decode exactly what this does.
func decodeRequestsByUnmarshal(b []byte) ([]*Request, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > MaxRequestsPerMessage {
		return nil, false
	}
	b = b[k:]
	var out []*Request
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, false
		}
		m, err := Unmarshal(b[k : k+int(l)])
		r, ok := m.(*Request)
		if err != nil || !ok {
			return nil, false
		}
		out = append(out, r)
		b = b[k+int(l):]
	}
	return out, len(b) == 0
}

func FuzzDecodeRequests(f *testing.F) {
	f.Add(AppendRequests(nil, sampleRequests()))
	f.Add([]byte{1, 0})
	f.Add(framed([]byte{byte(KindRequest)}))
	f.Add(framed(append(Marshal(&Request{Client: "c", ReadOnly: true}), 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := DecodeRequests(b)
		want, ok := decodeRequestsByUnmarshal(b)
		if (err == nil) != ok {
			t.Fatalf("DecodeRequests(%x): error %v, while one Unmarshal per entry accepts: %v", b, err, ok)
		}
		if err != nil {
			return
		}
		for i := range rs {
			if !reflect.DeepEqual(rs[i], want[i]) {
				t.Fatalf("request %d: %+v, Unmarshal gives %+v", i, rs[i], want[i])
			}
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
