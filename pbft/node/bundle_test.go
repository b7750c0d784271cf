package node

import (
	"bytes"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/kv"
)

// newSinkNodes are replicas n1..n4 whose transports are sinkTransports, with the
// keyrings of the four and of a gateway "gw".
func newSinkNodes(t *testing.T) (map[string]*Node, map[string]*sinkTransport, map[string]*auth.Keyring) {
	t.Helper()
	ids := []string{"n1", "n2", "n3", "n4"}
	keys, err := auth.GenerateKeyrings(append([]string{"gw"}, ids...), ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	nodes, sinks := map[string]*Node{}, map[string]*sinkTransport{}
	for _, id := range ids {
		sink := &sinkTransport{keep: true}
		n, err := New(Config{ID: id, NodeIDs: ids, Protocol: pbft.DefaultConfig(), Tick: time.Second, Keys: keys[id], App: kv.New()},
			func(bus.Handler) (bus.Transport, error) { return sink, nil })
		if err != nil {
			t.Fatal(err)
		}
		nodes[id], sinks[id] = n, sink
	}
	return nodes, sinks, keys
}

var bundleDigest = pbft.Digest{7}

// votesOf2 are a prepare and a commit of replica n2 (index 1) for number 1 in view 0,
// broadcast.
func votesOf2() []pbft.Outbound {
	return []pbft.Outbound{
		{To: pbft.Broadcast, Msg: &pbft.Prepare{View: 0, Seq: 1, Digest: bundleDigest, Replica: 1}},
		{To: pbft.Broadcast, Msg: &pbft.Commit{View: 0, Seq: 1, Digest: bundleDigest, Replica: 1}},
	}
}

// TestReadyBroadcastsGoInOneBundle: a Ready's broadcasts leave in one bundle message,
// where the first of them would have gone, while point-to-point messages and replies
// go as before; the bundle opens at a peer as the framed messages that would have gone
// alone, and the counters count each message under its kind.
func TestReadyBroadcastsGoInOneBundle(t *testing.T) {
	n, sink, keys := newSinkNode(t)
	commit := &pbft.Commit{View: 0, Seq: 1, Digest: bundleDigest, Replica: 0}
	cp := &pbft.Checkpoint{Seq: 1, State: pbft.Digest{9}, Replica: 0}
	n.send([]pbft.Outbound{
		{To: 1, Msg: &pbft.Prepare{View: 0, Seq: 2, Digest: bundleDigest, Replica: 0}},
		{To: pbft.Broadcast, Msg: commit},
		{To: pbft.ToGateway, Gateway: "gw", Msg: &pbft.Reply{Seq: 1, Client: "c", Timestamp: 1, Result: []byte("OK")}},
		{To: pbft.Broadcast, Msg: cp},
	}, FaultNone)
	var kinds []string
	for _, s := range sink.sent {
		kinds = append(kinds, s.kind)
	}
	if want := []string{"prepare", KindBundle, "reply"}; !slices.Equal(kinds, want) {
		t.Fatalf("sent %v, want %v", kinds, want)
	}
	b := sink.sent[1]
	if b.to != "" {
		t.Fatalf("the bundle went to %q, want a broadcast", b.to)
	}
	payload, err := keys["n3"].Open("n1", KindBundle, b.data)
	if err != nil {
		t.Fatalf("n3 cannot open the bundle: %v", err)
	}
	inner, err := DecodeBundle(payload)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{frame(0, pbft.Marshal(commit)), frame(0, pbft.Marshal(cp))}
	if !slices.EqualFunc(inner, want, bytes.Equal) {
		t.Errorf("bundle holds %x, want %x", inner, want)
	}
	out := n.Stats().Out
	if out["commit"] != 1 || out["checkpoint"] != 1 || out[KindBundle] != 1 || out["prepare"] != 1 {
		t.Errorf("counted %v, want one bundle, commit, checkpoint and prepare", out)
	}
}

// TestOneBroadcastAndFaultsGoAlone: a Ready with one broadcast sends it under its own
// kind, and a faulty replica's broadcasts take sendOut's path one by one (an
// equivocating one forges each of them).
func TestOneBroadcastAndFaultsGoAlone(t *testing.T) {
	n, sink, _ := newSinkNode(t)
	n.send(votesOf2()[1:], FaultNone)
	n.send(votesOf2(), FaultEquivocate)
	var kinds []string
	for _, s := range sink.sent {
		kinds = append(kinds, s.kind)
	}
	if want := []string{"commit", "prepare", "commit"}; !slices.Equal(kinds, want) {
		t.Fatalf("sent %v, want %v", kinds, want)
	}
}

// TestBundlesKeepToTheirBounds: more broadcasts than a bundle holds go in several, and a
// message too large to join the others goes in the next one (alone, under its own kind).
func TestBundlesKeepToTheirBounds(t *testing.T) {
	n, sink, keys := newSinkNode(t)
	var many []pbft.Outbound
	for i := range maxBundled + 3 {
		many = append(many, pbft.Outbound{To: pbft.Broadcast, Msg: &pbft.Commit{Seq: uint64(i + 1), Replica: 0}})
	}
	n.send(many, FaultNone)
	big := func(seq uint64) pbft.Outbound {
		req := &pbft.Request{Gateway: "gw", Client: "c", Timestamp: seq, Op: bytes.Repeat([]byte("x"), maxBundleBytes*2/3)}
		return pbft.Outbound{To: pbft.Broadcast, Msg: &pbft.PrePrepare{Seq: seq, Batch: []*pbft.Request{req}}}
	}
	n.send([]pbft.Outbound{{To: pbft.Broadcast, Msg: &pbft.Commit{Seq: 9}}, big(10), big(11)}, FaultNone)
	var got []string
	for _, s := range sink.sent {
		k := s.kind
		if k == KindBundle {
			payload, err := keys["n2"].Open("n1", k, s.data)
			if err != nil {
				t.Fatal(err)
			}
			inner, err := DecodeBundle(payload)
			if err != nil {
				t.Fatal(err)
			}
			k += "/" + string(rune('0'+len(inner)/10)) + string(rune('0'+len(inner)%10))
		}
		got = append(got, k)
	}
	if want := []string{"bundle/64", "bundle/03", "bundle/02", "preprepare"}; !slices.Equal(got, want) {
		t.Errorf("sent %v, want %v", got, want)
	}
	if c := n.Stats().Out["commit"]; c != maxBundled+4 {
		t.Errorf("counted %d commits sent, want %d", c, maxBundled+4)
	}
}

// TestBundleStepsLikeSeparateMessages: a bundle n2's send made steps, at n1, each of its
// messages exactly as the same messages sent alone do at another replica.
func TestBundleStepsLikeSeparateMessages(t *testing.T) {
	nodes, sinks, _ := newSinkNodes(t)
	nodes["n2"].send(votesOf2(), FaultNone)
	nodes["n2"].send(votesOf2(), FaultSilent) // faults aside, alone
	nodes["n2"].send(votesOf2()[:1], FaultNone)
	nodes["n2"].send(votesOf2()[1:], FaultNone)
	out := sinks["n2"].sent
	if len(out) != 3 || out[0].kind != KindBundle {
		t.Fatalf("n2 sent %d messages, want a bundle and the two alone", len(out))
	}
	deliver := func(to string, s sent) {
		nodes[to].handle(&item{msg: bus.Message{From: "n2", Kind: s.kind, Data: s.data}})
	}
	deliver("n1", out[0])
	deliver("n3", out[1])
	deliver("n3", out[2])
	bundled, alone := nodes["n1"].Stats(), nodes["n3"].Stats()
	if !maps.Equal(bundled.In, alone.In) || !maps.Equal(bundled.Rejected, alone.Rejected) {
		t.Errorf("bundled: in %v rejected %v; alone: in %v rejected %v", bundled.In, bundled.Rejected, alone.In, alone.Rejected)
	}
	if bundled.In["prepare"] != 1 || bundled.In["commit"] != 1 {
		t.Errorf("stepped %v, want the prepare and the commit", bundled.In)
	}
	a, b := nodes["n1"].r.Status(1), nodes["n3"].r.Status(1)
	if !slices.Equal(a.CommitsFrom, b.CommitsFrom) || a.Phase != b.Phase {
		t.Errorf("number 1 bundled %+v, alone %+v", a, b)
	}
}

// TestBundleRefusesWhatAloneIsRefused: each message of a bundle gets the checks it gets
// alone, with the same reasons, and a bad one is refused alone: a client's bare request
// (a bundle holds replicas' messages), a vote of a sender in no configuration, one that
// names another replica than its sender, damage; a bundle whose MAC fails is refused
// whole.
func TestBundleRefusesWhatAloneIsRefused(t *testing.T) {
	nodes, _, keys := newSinkNodes(t)
	n1 := nodes["n1"]
	good := frame(0, pbft.Marshal(&pbft.Commit{View: 0, Seq: 1, Digest: bundleDigest, Replica: 1}))
	bare := pbft.Marshal(&pbft.Request{Gateway: "n2", Client: "c", Timestamp: 1, Op: []byte("set x=1")})
	notSender := frame(0, pbft.Marshal(&pbft.Commit{View: 0, Seq: 1, Digest: bundleDigest, Replica: 2}))
	cases := []struct {
		name, from string
		inner      [][]byte
		reason     string
		stepped    uint64 // commits stepped
	}{
		{"bare request", "n2", [][]byte{bare, good}, RejectMalformed, 1},
		{"damaged", "n2", [][]byte{good, good[:3]}, RejectMalformed, 1},
		{"not a member", "gw", [][]byte{good, good}, RejectUnknownSender, 0},
		{"another replica's vote", "n2", [][]byte{notSender, good}, RejectProtocol, 2},
	}
	for _, tc := range cases {
		before := n1.Stats()
		data := keys[tc.from].Seal("", KindBundle, EncodeBundle(tc.inner))
		n1.handle(&item{msg: bus.Message{From: tc.from, Kind: KindBundle, Data: data}})
		after := n1.Stats()
		if after.Rejected[tc.reason] == before.Rejected[tc.reason] {
			t.Errorf("%s: not refused as %q: %v", tc.name, tc.reason, after.Rejected)
		}
		if got := after.In["commit"] - before.In["commit"]; got != tc.stepped {
			t.Errorf("%s: %d commits stepped, want %d", tc.name, got, tc.stepped)
		}
	}
	before := n1.Stats().Rejected
	payload := EncodeBundle([][]byte{good, good})
	data := keys["n2"].Seal("", KindBundle, payload)
	data[bytes.Index(data, payload)+len(payload)-1] ^= 1 // another digest in the second commit
	n1.handle(&item{msg: bus.Message{From: "n2", Kind: KindBundle, Data: data}})
	n1.handle(&item{msg: bus.Message{From: "n2", Kind: KindBundle, Data: keys["n2"].Seal("", KindBundle, []byte{1, 1, 0})}})
	after := n1.Stats().Rejected
	if after[RejectBadMAC] != before[RejectBadMAC]+1 || after[RejectMalformed] != before[RejectMalformed]+1 {
		t.Errorf("a forged and a malformed bundle: rejected %v, before %v", after, before)
	}
}

func TestBundleDecodeRefusesDamage(t *testing.T) {
	good := EncodeBundle([][]byte{{1, 2}, {3}})
	for _, b := range [][]byte{nil, {0}, {1, 1, 5}, {2, 1, 5}, good[:len(good)-1], append(bytes.Clone(good), 0),
		{2, 0, 1, 5}, {0x41, 1, 1, 1, 1}, {2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, err := DecodeBundle(b); err == nil {
			t.Errorf("DecodeBundle(%x) accepted", b)
		}
	}
	got, err := DecodeBundle(good)
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], []byte{1, 2}) || !bytes.Equal(got[1], []byte{3}) {
		t.Errorf("DecodeBundle(%x) = %x, %v", good, got, err)
	}
}

func FuzzDecodeBundle(f *testing.F) {
	f.Add(EncodeBundle([][]byte{frame(0, pbft.Marshal(&pbft.Commit{Seq: 1})), frame(3, pbft.Marshal(&pbft.Checkpoint{Seq: 2}))}))
	f.Add([]byte{2, 1, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		inner, err := DecodeBundle(b)
		if err != nil {
			return
		}
		again, err := DecodeBundle(EncodeBundle(inner))
		if err != nil || !slices.EqualFunc(again, inner, bytes.Equal) {
			t.Fatalf("re-encoding %d messages: %x, %v", len(inner), again, err)
		}
		for _, m := range inner {
			_, _, rest, err := unframe(m)
			if err == nil {
				_, _ = pbft.Unmarshal(rest) // must not panic
			}
		}
	})
}
