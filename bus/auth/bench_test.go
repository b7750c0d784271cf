package auth

import (
	"crypto/ed25519"
	"testing"
	"time"
)

// BenchmarkAuthRound is the authentication work of one n=4 round that orders and executes
// one request: the request (authenticator, seal, open, checks at the primary and in each
// backup's pre-prepare), pre-prepare, 3 prepares and 4 commits broadcast (each opened by
// the other replicas), and 4 replies opened by the gateway.
func BenchmarkAuthRound(b *testing.B) {
	ids := []string{"n1", "n2", "n3", "n4"}
	// Counters start at the process's start time in nanoseconds, as in the commands:
	// 9 bytes on the wire and in every tag's input.
	rings, err := GenerateKeyrings(append(ids, "gateway"), ids, uint64(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC).UnixNano()))
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 120) // a typical prepare/commit/reply on the wire
	digest := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		tags := rings["gateway"].RequestTags(digest)
		env := rings["gateway"].Seal("n1", "query", payload)
		mustOpen(b, rings["n1"], "gateway", "query", env)
		for _, r := range ids {
			if err := rings[r].VerifyRequest("gateway", digest, tags); err != nil {
				b.Fatal(err)
			}
		}
		broadcast := func(from, kind string) {
			env := rings[from].Seal("", kind, payload)
			for _, to := range ids {
				if to != from {
					mustOpen(b, rings[to], from, kind, env)
				}
			}
		}
		broadcast("n1", "preprepare")
		for _, r := range ids[1:] {
			broadcast(r, "prepare")
		}
		for _, r := range ids {
			broadcast(r, "commit")
		}
		for _, r := range ids {
			mustOpen(b, rings["gateway"], r, "reply", rings[r].Seal("gateway", "reply", payload))
		}
	}
}

func mustOpen(b *testing.B, k *Keyring, from, kind string, env []byte) {
	if _, err := k.Open(from, kind, env); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkVerifySignature is the cost of checking one signed view-change.
func BenchmarkVerifySignature(b *testing.B) {
	rings, _ := GenerateKeyrings([]string{"n1", "n2"}, []string{"n1", "n2"}, 1)
	msg := make([]byte, 200)
	sig := rings["n1"].Sign(msg)
	for b.Loop() {
		if !ed25519.Verify(rings["n2"].ring.Load().pubs["n1"], msg, sig) {
			b.Fatal("bad")
		}
	}
}
