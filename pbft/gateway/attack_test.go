package gateway

import (
	"context"
	"crypto/ed25519"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
	"github.com/pbft-nats/pbft/pbft/node"
)

// startService starts an embedded 4-replica cluster behind a Service.
func startService(t *testing.T) (*Service, *embedded.Cluster) {
	t.Helper()
	return startServiceWith(t, testSettings())
}

func execute(t *testing.T, svc *Service, dest, op string, ts uint64) ExecuteResult {
	t.Helper()
	res, err := svc.Execute(context.Background(), dest, RequestArgs{Operation: op, Client: "c1", Timestamp: ts})
	if err != nil {
		t.Fatalf("execute %.60q: %v", op, err)
	}
	return res
}

// stateDigests returns each replica's state digest and last executed number.
func stateDigests(t *testing.T, e *embedded.Cluster) map[string]string {
	out := map[string]string{}
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		if err := e.Node(id).Do(context.Background(), func(r *pbft.Replica) {
			d := r.StateDigest()
			out[id] = d.String()
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func rejected(e *embedded.Cluster, reason string) uint64 {
	var n uint64
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		n += e.Node(id).Stats().Rejected[reason]
	}
	return n
}

// An attacker with a plain NATS connection to the cluster's server, and a Byzantine
// replica with its own real keys, try to get messages in that they are not entitled to.
// The cluster keeps serving, every correct replica ends in the same state as if nothing
// happened, and each attempt is counted under its reason.
func TestAttackerOnTheBusIsRejected(t *testing.T) {
	svc, e := startService(t)
	attacker, err := e.Connect("attacker")
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	var mu sync.Mutex
	var captured []*nats.Msg
	sub, err := attacker.Subscribe("pbft."+e.Name()+".>", func(m *nats.Msg) {
		mu.Lock()
		captured = append(captured, m)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := attacker.Flush(); err != nil {
		t.Fatal(err)
	}
	execute(t, svc, "n1", "set x=1", 2)
	execute(t, svc, "n2", "set y=2", 3)
	prefix := "pbft." + e.Name() + "."
	var broadcasts, directs []*nats.Msg
	// The attacker's copies arrive asynchronously: wait for both shapes before leaving.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		msgs := append([]*nats.Msg(nil), captured...)
		mu.Unlock()
		broadcasts, directs = nil, nil
		for _, m := range msgs {
			switch {
			case strings.HasPrefix(m.Subject, prefix+"to.n"):
				directs = append(directs, m)
			case strings.Count(m.Subject, ".") == 3 && !strings.HasPrefix(m.Subject, prefix+"to."):
				broadcasts = append(broadcasts, m)
			}
		}
		if len(broadcasts) > 0 && len(directs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("captured %d broadcasts and %d direct messages", len(broadcasts), len(directs))
		}
		_ = attacker.Flush() // a round trip to the server: lets queued deliveries land
	}
	_ = sub.Unsubscribe()
	before := stateDigests(t, e)
	publish := func(subject string, data []byte) {
		if err := attacker.Publish(subject, data); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range broadcasts {
		publish(m.Subject, m.Data) // replayed
		tampered := append([]byte(nil), m.Data...)
		tampered[len(tampered)/2] ^= 0x01
		publish(m.Subject, tampered) // one byte flipped
		parts := strings.Split(m.Subject, ".")
		other := "n2"
		if parts[3] == "n2" {
			other = "n3"
		}
		publish(prefix+parts[2]+"."+other, m.Data) // envelope of one replica, subject of another
	}
	for _, m := range directs {
		parts := strings.Split(m.Subject, ".") // pbft.<c>.to.<receiver>.<kind>.<sender>
		if !strings.HasPrefix(parts[3], "n") {
			continue
		}
		other := "n3"
		if parts[3] == "n3" {
			other = "n4"
		}
		parts[3] = other
		publish(strings.Join(parts, "."), m.Data) // mis-addressed
	}
	// Forged: a key nobody knows, in the name of a known replica and of a stranger.
	evil, _ := auth.Generate("n2")
	self := evil.Public()
	evilRing, err := auth.NewKeyring(evil, []string{"n1", "n2", "n3", "n4"},
		map[string]ed25519.PublicKey{"n1": self, "n3": self, "n4": self}, 0)
	if err != nil {
		t.Fatal(err)
	}
	forgedCommit := pbft.Marshal(&pbft.Commit{View: 0, Seq: 3, Replica: 1})
	forgedCommit = node.Frame(0, forgedCommit) // as replicas send it: with its configuration
	publish(prefix+"commit.n2", evilRing.Seal("", "commit", forgedCommit))
	mallory, _ := auth.Generate("mallory")
	malloryRing, err := auth.NewKeyring(mallory, []string{"n1", "n2", "n3", "n4"},
		map[string]ed25519.PublicKey{"n1": self, "n2": self, "n3": self, "n4": self}, 0)
	if err != nil {
		t.Fatal(err)
	}
	publish(prefix+"commit.mallory", malloryRing.Seal("", "commit", forgedCommit))
	// A Byzantine replica (n4, with its real keys) signs a view-change in n2's name.
	n4 := e.Keyring("n4")
	vc := &pbft.ViewChange{NewView: 1, Replica: 1}
	vc.Sig = n4.Sign(pbft.SignedBytes(vc))
	publish(prefix+"viewchange.n4", n4.Seal("", "viewchange", node.Frame(0, pbft.Marshal(vc))))
	// ... and a request in the gateway's name, which a primary could try to slip in.
	req := &pbft.Request{Gateway: "gateway", Client: "c1", Timestamp: 99, Op: []byte("set x=666")}
	req.Auth = n4.RequestTags(pbft.RequestDigest(req))
	publish(prefix+"preprepare.n4", n4.Seal("", "preprepare", node.Frame(0, pbft.Marshal(&pbft.PrePrepare{View: 0, Seq: 3,
		Digest: pbft.BatchDigest([]*pbft.Request{req}), Batch: []*pbft.Request{req}}))))
	if err := attacker.Flush(); err != nil {
		t.Fatal(err)
	}

	want := []string{node.RejectReplayed, node.RejectBadMAC, node.RejectSenderMismatch, node.RejectUnknownSender, node.RejectBadSignature}
	deadline = time.Now().Add(5 * time.Second)
	for _, reason := range want {
		for rejected(e, reason) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("nothing counted as %q; counters: %v", reason, e.Node("n1").Stats().Rejected)
			}
			time.Sleep(5 * time.Millisecond) // polling a counter, with a deadline
		}
	}
	// Nothing the attacker sent changed any state: digests as before, and x is still 1.
	if after := stateDigests(t, e); !equalMaps(before, after) {
		t.Fatalf("state changed under attack: %v -> %v", before, after)
	}
	if res := execute(t, svc, "n3", "get x", 4); res.Result != "1" || res.Replies != 4 {
		t.Fatalf("after the attack: %+v", res)
	}
	if v := stateDigests(t, e); v["n1"] != v["n2"] || v["n2"] != v["n3"] || v["n3"] != v["n4"] {
		t.Fatalf("replicas diverged: %v", v)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
