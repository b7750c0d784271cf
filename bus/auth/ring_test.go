package auth

import (
	"errors"
	"testing"
)

// A replica that joins lists the membership it joins, the others the one they started
// with, in another order: broadcasts and request authenticators still verify both ways
// once the old ones Include the joiner, and not before (the joiner has no tag).
func TestAuthenticatorsNeedNoAgreedOrder(t *testing.T) {
	dir := t.TempDir()
	ids := []string{"n1", "n2", "n3", "n4", "n5", "gw"}
	for _, id := range ids {
		if err := WriteKeyPair(dir, id); err != nil {
			t.Fatal(err)
		}
	}
	load := func(self string, replicas []string) *Keyring {
		k, err := LoadKeyring(dir, self, replicas, 1)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	old := load("n1", []string{"n1", "n2", "n3", "n4"})
	gw := load("gw", []string{"n4", "n3", "n2", "n1"})
	joiner := load("n5", []string{"n5", "n4", "n3", "n2", "n1"})

	env := old.Seal("", "checkpoint", []byte("cp"))
	if _, err := joiner.Open("n1", "checkpoint", env); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("joiner opened a broadcast with no tag for it: %v", err)
	}
	if err := joiner.VerifyRequest("gw", []byte("d"), gw.RequestTags([]byte("d"))); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("joiner verified a request with no tag for it: %v", err)
	}
	for _, k := range []*Keyring{old, gw} {
		if err := k.Include([]string{"n1", "n5"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := old.Replicas(); len(got) != 5 || got[4] != "n5" {
		t.Fatalf("replicas after Include: %q", got)
	}
	env = old.Seal("", "checkpoint", []byte("cp"))
	if p, err := joiner.Open("n1", "checkpoint", env); err != nil || string(p) != "cp" {
		t.Fatalf("joiner: %q, %v", p, err)
	}
	tags := gw.RequestTags([]byte("d"))
	for _, k := range []*Keyring{old, joiner} {
		if err := k.VerifyRequest("gw", []byte("d"), tags); err != nil {
			t.Fatalf("%s: %v", k.Self().ID, err)
		}
	}
	env = joiner.Seal("", "status", []byte("s"))
	if _, err := old.Open("n5", "status", env); err != nil {
		t.Fatalf("old member refused the joiner's broadcast: %v", err)
	}
}

// Include reads a key it lacks from the keys directory, and a key that is not there is
// an error that changes nothing.
func TestIncludeLearnsKeysFromTheDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, id := range []string{"n1", "n2"} {
		if err := WriteKeyPair(dir, id); err != nil {
			t.Fatal(err)
		}
	}
	k, err := LoadKeyring(dir, "n1", []string{"n1", "n2"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Include([]string{"n3"}); !errors.Is(err, ErrKeys) {
		t.Fatalf("Include of a replica without a key: %v", err)
	}
	if got := k.Replicas(); len(got) != 2 || k.Knows("n3") {
		t.Fatalf("a failed Include changed the keyring: %q", got)
	}
	if err := WriteKeyPair(dir, "n3"); err != nil { // the operator adds the new replica's key
		t.Fatal(err)
	}
	if err := k.Include([]string{"n3"}); err != nil {
		t.Fatal(err)
	}
	n3, err := LoadKeyring(dir, "n3", []string{"n3"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n3.Open("n1", "commit", k.Seal("", "commit", []byte("c"))); err != nil {
		t.Fatalf("n3 refused n1's broadcast: %v", err)
	}
	// Without a keys directory (generated keyrings) an unknown replica is an error.
	g, err := GenerateKeyrings([]string{"a", "b"}, []string{"a", "b"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := g["a"].Include([]string{"c"}); !errors.Is(err, ErrKeys) {
		t.Fatalf("Include without a directory: %v", err)
	}
}
