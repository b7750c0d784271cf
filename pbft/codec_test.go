package pbft

import (
	"bytes"
	"reflect"
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
		&State{Seq: 256, Snapshot: []byte("snap"), Replica: 0},
		vc,
		&NewView{View: 3, Replica: 3, ViewChanges: []*ViewChange{vc}, PrePrepares: []*PrePrepare{{View: 3, Seq: 130, Digest: d, Batch: batch}}, Sig: []byte("s")},
	}
}

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
	vc := sampleMessages()[10].(*ViewChange)
	a := SignedBytes(vc)
	vc2 := *vc
	vc2.Sig = []byte("other")
	if !bytes.Equal(a, SignedBytes(&vc2)) {
		t.Fatal("signature changed the signed bytes")
	}
	vc2.LowWater = 0
	if bytes.Equal(a, SignedBytes(&vc2)) {
		t.Fatal("content change did not change the signed bytes")
	}
}

// FuzzUnmarshal: any bytes decode without panicking, and whatever decodes re-encodes to
// something that decodes to the same message.
func FuzzUnmarshal(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(Marshal(m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Unmarshal(data)
		if err != nil {
			return
		}
		b := Marshal(m)
		m2, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if !bytes.Equal(b, Marshal(m2)) {
			t.Fatal("encoding is not stable")
		}
	})
}

// FuzzStep feeds arbitrary decoded messages from arbitrary senders into replicas in
// every role: nothing may panic, and a replica's invariants hold afterwards.
func FuzzStep(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(uint8(1), Marshal(m))
	}
	f.Fuzz(func(t *testing.T, from uint8, data []byte) {
		m, err := Unmarshal(data)
		if err != nil {
			return
		}
		for id := 0; id < 4; id++ {
			c := DefaultConfig()
			c.ID, c.N, c.App = id, 4, &chainApp{}
			c.CheckpointInterval, c.LogWindow = 128, 256
			r, _ := NewReplica(c)
			sender := int(from%5) - 1 // FromClient or a replica
			_ = r.Step(sender, m)
			r.Propose()
			for i := 0; i < 3; i++ {
				r.Tick()
			}
			_ = r.Ready()
			if r.LastExecuted() < r.StableCheckpoint() {
				t.Fatalf("executed %d below stable checkpoint %d", r.LastExecuted(), r.StableCheckpoint())
			}
		}
	})
}
