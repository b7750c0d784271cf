package auth

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var replicas = []string{"n1", "n2", "n3", "n4"}

// ring builds a keyring for each of replicas plus a gateway.
func rings(t *testing.T) map[string]*Keyring {
	t.Helper()
	ids := map[string]*Identity{}
	pubs := map[string]ed25519.PublicKey{}
	for _, id := range append([]string{"gw"}, replicas...) {
		ident, err := Generate(id)
		if err != nil {
			t.Fatal(err)
		}
		ids[id], pubs[id] = ident, ident.Public()
	}
	out := map[string]*Keyring{}
	for id, ident := range ids {
		k, err := NewKeyring(ident, replicas, pubs, 1000)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = k
	}
	return out
}

func TestPairwiseKeysAgree(t *testing.T) {
	k := rings(t)
	for a := range k {
		for b := range k {
			if a == b {
				continue
			}
			ta := k[a].tag(nil, k[a].ring.Load().macs[b], "x", "k", 1, []byte("d"), "s", 0)
			tb := k[b].tag(nil, k[b].ring.Load().macs[a], "x", "k", 1, []byte("d"), "s", 0)
			if string(ta) != string(tb) {
				t.Fatalf("%s and %s derived different keys", a, b)
			}
		}
	}
	t2 := k["n1"].tag(nil, k["n1"].ring.Load().macs["n2"], "x", "k", 1, []byte("d"), "s", 0)
	t3 := k["n1"].tag(nil, k["n1"].ring.Load().macs["n3"], "x", "k", 1, []byte("d"), "s", 0)
	if string(t2) == string(t3) {
		t.Fatal("different pairs share a key")
	}
}

func TestSealOpen(t *testing.T) {
	k := rings(t)
	env := k["n1"].Seal("", "prepare", []byte("hello"))
	for _, r := range replicas[1:] {
		p, err := k[r].Open("n1", "prepare", env)
		if err != nil || string(p) != "hello" {
			t.Fatalf("%s: %q %v", r, p, err)
		}
		if _, err := k[r].Open("n1", "prepare", env); !errors.Is(err, ErrReplay) {
			t.Fatalf("%s: replay accepted: %v", r, err)
		}
	}
	direct := k["gw"].Seal("n2", "query", []byte("q"))
	if _, err := k["n2"].Open("gw", "query", direct); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		opener string
		sender string
		kind   string
		data   []byte
		want   error
	}{
		{"mis-addressed", "n3", "gw", "query", k["gw"].Seal("n2", "query", []byte("q")), ErrBadMAC},
		{"other kind", "n2", "gw", "answer", k["gw"].Seal("n2", "query", []byte("q")), ErrBadMAC},
		{"subject names another sender", "n2", "n3", "query", k["gw"].Seal("n2", "query", []byte("q")), ErrSenderMismatch},
		{"unknown sender", "n2", "evil", "query", forged("evil"), ErrUnknownSender},
		{"garbage", "n2", "gw", "query", []byte{1}, ErrMalformed},
	}
	for _, c := range cases {
		if _, err := k[c.opener].Open(c.sender, c.kind, c.data); !errors.Is(err, c.want) {
			t.Fatalf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func forged(sender string) []byte {
	id, _ := Generate(sender)
	k, _ := NewKeyring(id, replicas, map[string]ed25519.PublicKey{"n1": id.Public(), "n2": id.Public(), "n3": id.Public(), "n4": id.Public()}, 0)
	return k.Seal("n2", "query", []byte("q"))
}

// Flipping any single byte of an envelope must make it fail.
func TestEveryTamperedByteIsRejected(t *testing.T) {
	k := rings(t)
	env := k["n1"].Seal("", "commit", []byte("payload bytes"))
	tagsAt := len(env) - len(replicas)*tagSize
	own := tagsAt + 2*tagSize // n3's slot in the authenticator
	for i := range env {
		if i >= tagsAt && (i < own || i >= own+tagSize) {
			continue // another receiver's tag: n3 does not check it (see below)
		}
		bad := append([]byte(nil), env...)
		bad[i] ^= 0x01
		if _, err := k["n3"].Open("n1", "commit", bad); err == nil {
			t.Fatalf("flip at byte %d accepted", i)
		}
	}
	// A flip in n2's tag is caught by n2, the receiver that tag is for.
	bad := append([]byte(nil), env...)
	bad[tagsAt+tagSize] ^= 0x01
	if _, err := k["n2"].Open("n1", "commit", bad); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("n2 accepted a tampered tag: %v", err)
	}
	if _, err := k["n3"].Open("n1", "commit", env); err != nil {
		t.Fatalf("original rejected after tamper attempts: %v", err)
	}
}

func TestRequestTagsAndSignatures(t *testing.T) {
	k := rings(t)
	tags := k["gw"].RequestTags([]byte("digest"))
	for _, r := range replicas {
		if err := k[r].VerifyRequest("gw", []byte("digest"), tags); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		if err := k[r].VerifyRequest("gw", []byte("altered"), tags); err == nil {
			t.Fatalf("%s: altered request accepted", r)
		}
	}
	// A primary cannot make tags in the gateway's name.
	if err := k["n2"].VerifyRequest("gw", []byte("d"), k["n1"].RequestTags([]byte("d"))); err == nil {
		t.Fatal("tags from a replica accepted as the gateway's")
	}
	sig := k["n1"].Sign([]byte("vc"))
	if err := k["n2"].Verify("n1", []byte("vc"), sig); err != nil {
		t.Fatal(err)
	}
	if err := k["n2"].Verify("n3", []byte("vc"), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signature in another replica's name accepted: %v", err)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	for _, id := range []string{"n1", "n2"} {
		if err := WriteKeyPair(dir, id); err != nil {
			t.Fatal(err)
		}
	}
	id, err := LoadIdentity(dir, "n1")
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := LoadAllPublic(dir)
	if err != nil || len(pubs) != 2 || !pubs["n1"].Equal(id.Public()) {
		t.Fatalf("%v %v", pubs, err)
	}
	// A public key that does not match the private key stops the process.
	n2pub, _ := os.ReadFile(filepath.Join(dir, "n2.pub"))
	os.WriteFile(filepath.Join(dir, "n1.pub"), n2pub, 0o644)
	if _, err := LoadIdentity(dir, "n1"); !errors.Is(err, ErrKeys) {
		t.Fatalf("mismatched key pair accepted: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "n2.key"), []byte("not base64!"), 0o600)
	if _, err := LoadIdentity(dir, "n2"); !errors.Is(err, ErrKeys) {
		t.Fatalf("malformed key accepted: %v", err)
	}
	if _, err := LoadIdentity(dir, "n3"); !errors.Is(err, ErrKeys) {
		t.Fatalf("missing key accepted: %v", err)
	}
	if err := WriteKeyPair(dir, "../x"); err == nil {
		t.Fatal("path in id accepted")
	}
}

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	for _, c := range []uint64{5, 3, 4, 10, 7} { // out of order, each once
		if !w.accept(c) {
			t.Fatalf("fresh counter %d refused", c)
		}
	}
	for _, c := range []uint64{5, 3, 10, 0} {
		if w.accept(c) {
			t.Fatalf("counter %d accepted twice", c)
		}
	}
	w.accept(10 + replayWindowSize)
	if w.accept(6) {
		t.Fatal("counter older than the window accepted")
	}
	if !w.accept(11 + replayWindowSize/2) {
		t.Fatal("fresh counter inside the window refused")
	}
}

// TestNoAllocationsPerTag: checking an envelope allocates nothing and sealing one
// allocates only the envelope, however many tags it carries (each tag used to allocate
// its header, sum and the digest it covered: 188 allocations per n=4 round, now 14).
func TestNoAllocationsPerTag(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled HMACs at random; run without -race")
	}
	ids := []string{"n1", "n2", "n3", "n4"}
	rings, err := GenerateKeyrings(append(ids, "gw"), ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 120)
	env := rings["n1"].Seal("", "commit", payload)
	open := testing.AllocsPerRun(100, func() {
		// A fresh counter each time, or the replay window refuses it.
		env = rings["n1"].Seal("", "commit", payload)
		if _, err := rings["n2"].Open("n1", "commit", env); err != nil {
			t.Fatal(err)
		}
	})
	if open > 1 {
		t.Errorf("seal and open of a broadcast: %v allocations, want 1 (the envelope)", open)
	}
	digest := make([]byte, 32)
	tags := rings["gw"].RequestTags(digest)
	if a := testing.AllocsPerRun(100, func() {
		if err := rings["n3"].VerifyRequest("gw", digest, tags); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("VerifyRequest: %v allocations, want 0", a)
	}
}

// TestAppendSeal: an envelope appended to a reused buffer opens like Seal's, keeps what
// the buffer held before it, and costs no allocation once the buffer is large enough.
func TestAppendSeal(t *testing.T) {
	ids := []string{"n1", "n2", "n3", "n4"}
	rings, err := GenerateKeyrings(append(ids, "gw"), ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("a commit, say")
	buf := append(make([]byte, 0, 512), "prefix"...)
	env := rings["n1"].AppendSeal(buf, "", "commit", payload)
	if string(env[:6]) != "prefix" {
		t.Fatalf("prefix lost: %q", env[:6])
	}
	for _, to := range ids[1:] {
		if got, err := rings[to].Open("n1", "commit", env[6:]); err != nil || string(got) != string(payload) {
			t.Fatalf("%s opens %q, %v", to, got, err)
		}
	}
	direct := rings["n1"].AppendSeal(buf[:0], "gw", "reply", payload)
	if got, err := rings["gw"].Open("n1", "reply", direct); err != nil || string(got) != string(payload) {
		t.Fatalf("gw opens %q, %v", got, err)
	}
	if _, err := rings["n2"].Open("n1", "reply", direct); err == nil {
		t.Fatal("n2 opened an envelope for gw")
	}
	if raceEnabled {
		return // pooled HMACs are dropped at random under the race detector
	}
	if a := testing.AllocsPerRun(100, func() { buf = rings["n1"].AppendSeal(buf[:0], "", "commit", payload) }); a != 0 {
		t.Errorf("AppendSeal into a reused buffer: %v allocations, want 0", a)
	}
}

// TestTagsBindTheDirection: a tag names neither principal (the pair's key does), so it
// binds which of the two sent it: an envelope or request authenticator that one replica
// made for another is refused when played back to its maker as the other's.
func TestTagsBindTheDirection(t *testing.T) {
	k := rings(t)
	for _, to := range []string{"n2", ""} { // point to point, and a broadcast's n1 slot
		env := k["n1"].Seal(to, "commit", []byte("c"))
		reflected := append([]byte(nil), env...)
		reflected[4] = '2' // the envelope's sender: "n1" becomes "n2"
		if _, err := k["n1"].Open("n2", "commit", reflected); !errors.Is(err, ErrBadMAC) {
			t.Fatalf("to %q: n1's own envelope accepted back as n2's: %v", to, err)
		}
		if _, err := k["n2"].Open("n1", "commit", env); err != nil {
			t.Fatalf("to %q: the genuine envelope: %v", to, err)
		}
	}
	tags := k["n1"].RequestTags([]byte("digest"))
	if err := k["n1"].VerifyRequest("n2", []byte("digest"), tags); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("n1's request tags accepted back as n2's: %v", err)
	}
}

// TestTagInputFitsOneBlock: what a tag hashes fits one SHA-256 block (at most 55 bytes,
// so an HMAC costs two compressions) for every kind the cluster sends, with a counter
// as large as a process started this century seeds it with (only the rare "askadmission"
// takes a second block).
func TestTagInputFitsOneBlock(t *testing.T) {
	counter := uint64(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	digest := make([]byte, 32)
	for _, kind := range []string{"request", "requests", "preprepare", "prepare", "commit", "checkpoint",
		"viewchange", "newview", "reply", "replies", "query", "answer", "status", "fetch", "state",
		"fetchbatch", "batch", "committed", "transition", "chain"} {
		if n := len(appendTagInput(nil, true, kind, counter, digest, pathBroadcast)); n > 55 {
			t.Errorf("kind %q: a tag hashes %d bytes, more than one block's 55", kind, n)
		}
	}
}
