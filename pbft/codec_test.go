package pbft

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"testing"
)

func sampleMessages() []Message {
	req := &Request{Gateway: "gw", Client: "c1", Timestamp: 7, Op: []byte("set x=1"), Auth: []byte{1, 2}}
	batch := []*Request{req, {Gateway: "gw", Client: "c2", Timestamp: 1, Op: []byte("get x")}}
	d := BatchDigest(batch)
	vc := &ViewChange{NewView: 3, Replica: 2, LowWater: 128,
		Checkpoints: []CheckpointClaim{{Seq: 128, State: Digest{9}}},
		P:           []Prepared{{Seq: 130, View: 1, Digest: d, Batch: batch}},
		Q:           []PrePrepared{{Seq: 130, View: 2, Digest: d}}, Sig: []byte("sig")}
	return []Message{
		req,
		&PrePrepare{View: 1, Seq: 2, Digest: d, Batch: batch},
		&PrePrepare{View: 1, Seq: 3, Digest: BatchDigest(nil)},
		&Prepare{View: 1, Seq: 2, Digest: d, Replica: 3},
		&Commit{View: 1, Seq: 2, Digest: d, Replica: 0},
		&Reply{View: 1, Seq: 2, Client: "c1", Timestamp: 7, Replica: 1, Result: []byte("OK")},
		&Checkpoint{Seq: 128, State: Digest{1}, Replica: 2},
		&StatusMsg{View: 4, LowWater: 128, LastExecuted: 131, Replica: 1},
		&Fetch{Seq: 256, Replica: 3},
		&State{Seq: 256, Offset: 4, Total: 12, Snapshot: []byte("snap"), Replica: 0},
		&FetchBatch{Seq: 130, Digest: d, Replica: 2},
		&BatchMsg{Seq: 130, Digest: d, Batch: batch, Replica: 1},
		&Committed{View: 2, Seq: 130, Digest: d, Batch: batch, Replica: 3},
		&Committed{View: 0, Seq: 131, Digest: BatchDigest(nil), Replica: 0},
		vc,
		&NewView{View: 3, Replica: 3, ViewChanges: []*ViewChange{vc}, PrePrepares: []*PrePrepare{{View: 3, Seq: 130, Digest: d, Batch: batch}}, Sig: []byte("s")},
		&Transition{Link: link, Signer: "n2", Sig: []byte("sig")},
		&Chain{Certs: []*TransitionCert{{Link: link, Sigs: []Signature{{Signer: "n1", Sig: []byte("a")}, {Signer: "n2", Sig: []byte("b")}}}}},
		&Chain{},
		&Chain{Admission: req},
		&AskAdmission{Joiner: "n5", Members: []string{"n1", "n2", "n3", "n4", "n5"}},
	}
}

// link is a sample transition link: configuration 3 of four ended at 256.
var link = TransitionLink{Ends: Membership{Conf: 3, Members: []string{"n1", "n2", "n3", "n4"}}, Seq: 256,
	Next: []string{"n1", "n2", "n3", "n4", "n5"}, State: Digest{5}}

func TestCodecRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b := Marshal(m)
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("%s: %v", m.Kind(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: round trip changed the message:\n%#v\n%#v", m.Kind(), m, got)
		}
		if _, err := Unmarshal(append(b, 0)); err == nil {
			t.Fatalf("%s: trailing byte accepted", m.Kind())
		}
		if _, err := Unmarshal(b[:len(b)-1]); err == nil {
			t.Fatalf("%s: truncated message accepted", m.Kind())
		}
	}
}

func TestSignedBytesExcludeSignature(t *testing.T) {
	var vc *ViewChange
	for _, m := range sampleMessages() {
		if v, ok := m.(*ViewChange); ok {
			vc = v
		}
	}
	a := SignedBytes(vc)
	vc2 := *vc
	vc2.Sig = []byte("other")
	if !bytes.Equal(a, SignedBytes(&vc2)) {
		t.Fatal("signature changed the signed bytes")
	}
	// A NEW-VIEW carries view-changes without their batches: the signature covers the
	// digests only.
	if !bytes.Equal(a, SignedBytes(StripBatches(vc))) || len(vc.P[0].Batch) == 0 {
		t.Fatal("leaving the batches out changed the signed bytes")
	}
	vc3 := *StripBatches(vc)
	vc3.P[0].Digest[0] ^= 1
	if bytes.Equal(a, SignedBytes(&vc3)) {
		t.Fatal("a prepared digest is not signed")
	}
	vc2.LowWater = 0
	if bytes.Equal(a, SignedBytes(&vc2)) {
		t.Fatal("content change did not change the signed bytes")
	}
}

// FuzzUnmarshal: any bytes decode without panicking (or fail with ErrDecode), and
// whatever decodes re-encodes to bytes that decode to an identical message and encode
// again to the same bytes. The input itself is reproduced exactly unless it used
// overlong varints (which Uvarint accepts): re-encoding never grows, and an input as
// long as its re-encoding is byte for byte the same.
func FuzzUnmarshal(f *testing.F) {
	for _, m := range append(sampleMessages(), readOnlySamples()...) {
		f.Add(Marshal(m))
	}
	f.Add([]byte{byte(KindPrepare), 0x81, 0x00, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		m, err := Unmarshal(data)
		if !bytes.Equal(data, orig) {
			t.Fatal("Unmarshal modified its input")
		}
		if err != nil {
			if m != nil || !errors.Is(err, ErrDecode) {
				t.Fatalf("Unmarshal: %v, %v; want nil and ErrDecode", m, err)
			}
			return
		}
		if byte(m.Kind()) != data[0] {
			t.Fatalf("kind byte %d decoded as %s", data[0], m.Kind())
		}
		b := Marshal(m)
		m2, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-encoding decodes to another message:\n%#v\n%#v", m, m2)
		}
		if !bytes.Equal(b, Marshal(m2)) {
			t.Fatal("encoding is not stable")
		}
		if len(b) > len(data) || len(b) == len(data) && !bytes.Equal(b, data) {
			t.Fatalf("re-encoding %x of %x is not the canonical form", b, data)
		}
		_ = SignedBytes(m)
	})
}

// FuzzStep feeds one arbitrary decoded message from the Byzantine replica of a fuzz
// cluster (or from a faulty client, for a request) to every honest replica, in one of
// fzCluster's states (fresh, after checkpoints, after a view change, with messages in
// flight), then lets the cluster settle: nothing panics and fzCluster's safety checks
// hold. FuzzCluster (fuzz_test.go) does the same for sequences of messages.
func FuzzStep(f *testing.F) {
	for i, m := range append(sampleMessages(), readOnlySamples()...) {
		f.Add(uint8(i), uint8(i%5), Marshal(m))
	}
	f.Fuzz(func(t *testing.T, scenario, from uint8, data []byte) {
		if _, err := Unmarshal(data); err != nil {
			return
		}
		c := newFzCluster(t)
		c.setup(scenario, from)
		for to := 0; to < fzN; to++ {
			if c.honest(to) {
				m, _ := Unmarshal(data) // a fresh copy for each receiver
				c.byzantine(to, m, from&0x80 != 0)
			}
		}
		c.settle()
	})
}

// TestDecodeBatchAllocations: a backup decodes every pre-prepare's batch; its requests
// come in one allocation and share their gateway's name (a request each and two strings
// each before: 194 allocations for this pre-prepare, now 69), and gateways that alternate
// still decode as sent.
func TestDecodeBatchAllocations(t *testing.T) {
	batch := make([]*Request, 64)
	for i := range batch {
		gw := "gw1"
		if i%7 == 3 {
			gw = "gw2"
		}
		batch[i] = &Request{Gateway: gw, Client: "client-" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Timestamp: uint64(i + 1), Op: []byte("set k=v"), Auth: make([]byte, 64)}
	}
	pp := &PrePrepare{View: 1, Seq: 9, Digest: BatchDigest(batch), Batch: batch}
	data := Marshal(pp)
	got, err := Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, pp) {
		t.Fatalf("decoded %+v, want %+v", got, pp)
	}
	// The pre-prepare, the batch, its requests, 64 client names, the two gateways.
	want := 3.0 + 64 + 2
	if a := testing.AllocsPerRun(50, func() { _, _ = Unmarshal(data) }); a > want {
		t.Errorf("decoding a pre-prepare of 64 requests: %v allocations, want at most %v", a, want)
	}
}

// TestBatchCountPastItsBytes: a pre-prepare whose batch claims more requests than its
// bytes can hold (each takes at least minBatchEntry) is refused before anything is
// allocated for them: 60,000 claimed in 60,000 bytes cost 6.5 MB before.
func TestBatchCountPastItsBytes(t *testing.T) {
	head := Marshal(&PrePrepare{View: 1, Seq: 1})
	if head[len(head)-1] != 0 {
		t.Fatalf("an empty batch does not end its pre-prepare: %x", head)
	}
	const claimed = 60000
	data := appendUvarint(bytes.Clone(head[:len(head)-1]), claimed)
	data = append(data, make([]byte, claimed)...) // 12,000 smallest requests' worth
	if _, err := Unmarshal(data); err == nil {
		t.Fatal("a batch of 60,000 requests in 60,000 bytes decoded")
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		_, _ = Unmarshal(data)
	}
	runtime.ReadMemStats(&after)
	if allocated := (after.TotalAlloc - before.TotalAlloc) / 10; allocated > 4096 {
		t.Errorf("refusing it allocated %d bytes", allocated)
	}
	// Exactly as many as the bytes hold still decode.
	fits := appendUvarint(bytes.Clone(head[:len(head)-1]), claimed/minBatchEntry)
	fits = append(fits, make([]byte, claimed)...)
	m, err := Unmarshal(fits)
	if err != nil {
		t.Fatalf("%d smallest requests: %v", claimed/minBatchEntry, err)
	}
	if got := len(m.(*PrePrepare).Batch); got != claimed/minBatchEntry {
		t.Fatalf("%d requests decoded, want %d", got, claimed/minBatchEntry)
	}
}
