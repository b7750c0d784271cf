// Package auth authenticates the messages of the cluster. Every replica and gateway has
// an Ed25519 identity; each pair of identities derives a shared MAC key from them (X25519
// agreement on the Montgomery form of the Ed25519 keys, then HKDF-SHA256), so MAC keys are
// never configured by hand. Normal-case messages carry MAC authenticators (one tag per
// receiver, as in Castro & Liskov); messages that are later forwarded as evidence are
// signed with Ed25519.
package auth

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/edwards25519"
)

// ErrKeys reports missing, malformed or inconsistent key material.
var ErrKeys = errors.New("auth: bad key material")

// Identity is one principal's key pair.
type Identity struct {
	ID      string
	Private ed25519.PrivateKey
}

// Public returns the identity's public key.
func (id *Identity) Public() ed25519.PublicKey { return id.Private.Public().(ed25519.PublicKey) }

// Generate makes a new identity.
func Generate(name string) (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Identity{ID: name, Private: priv}, nil
}

// File names inside a keys directory.
func pubFile(dir, id string) string { return filepath.Join(dir, id+".pub") }
func keyFile(dir, id string) string { return filepath.Join(dir, id+".key") }

// KeyPairFiles returns the paths WriteKeyPair writes for id in dir: <id>.key and
// <id>.pub, or an error for an id that cannot name a key file.
func KeyPairFiles(dir, id string) (key, pub string, err error) {
	if err := checkID(id); err != nil {
		return "", "", err
	}
	return keyFile(dir, id), pubFile(dir, id), nil
}

// WriteKeyPair generates an identity and writes <id>.key (the 32-byte seed, base64, mode
// 0600) and <id>.pub (the public key, base64) into dir. Both are one line of text, so a
// Kubernetes Secret or ConfigMap can carry them.
func WriteKeyPair(dir, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	ident, err := Generate(id)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile(dir, id), []byte(base64.StdEncoding.EncodeToString(ident.Private.Seed())+"\n"), 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubFile(dir, id), []byte(base64.StdEncoding.EncodeToString(ident.Public())+"\n"), 0o644)
}

func checkID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\\.*> \t\n") {
		return fmt.Errorf("%w: id %q cannot name a key file", ErrKeys, id)
	}
	return nil
}

func readB64(path string, size int) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeys, err)
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(b) != size {
		return nil, fmt.Errorf("%w: %s: want %d bytes of base64", ErrKeys, path, size)
	}
	return b, nil
}

// LoadIdentity reads <self>.key from dir and checks it against <self>.pub there.
func LoadIdentity(dir, self string) (*Identity, error) {
	seed, err := readB64(keyFile(dir, self), ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	id := &Identity{ID: self, Private: ed25519.NewKeyFromSeed(seed)}
	pub, err := readB64(pubFile(dir, self), ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	if !id.Public().Equal(ed25519.PublicKey(pub)) {
		return nil, fmt.Errorf("%w: %s does not match %s", ErrKeys, pubFile(dir, self), keyFile(dir, self))
	}
	return id, nil
}

// LoadPublic reads <id>.pub for each id.
func LoadPublic(dir string, ids []string) (map[string]ed25519.PublicKey, error) {
	out := make(map[string]ed25519.PublicKey, len(ids))
	for _, id := range ids {
		if err := checkID(id); err != nil {
			return nil, err
		}
		b, err := readB64(pubFile(dir, id), ed25519.PublicKeySize)
		if err != nil {
			return nil, err
		}
		if _, err := new(edwards25519.Point).SetBytes(b); err != nil {
			return nil, fmt.Errorf("%w: %s is not a valid Ed25519 public key", ErrKeys, pubFile(dir, id))
		}
		out[id] = b
	}
	return out, nil
}

// macKey derives the key self shares with peer: X25519 between self's Ed25519 scalar and
// peer's public key in Montgomery form, then HKDF-SHA256 bound to both ids (sorted, so
// both ends derive the same key).
func macKey(self *Identity, peer string, peerPub ed25519.PublicKey) ([]byte, error) {
	h := sha512.Sum512(self.Private.Seed())
	priv, err := ecdh.X25519().NewPrivateKey(h[:32]) // clamped by X25519, as Ed25519 does
	if err != nil {
		return nil, err
	}
	p, err := new(edwards25519.Point).SetBytes(peerPub)
	if err != nil {
		return nil, fmt.Errorf("%w: public key of %s: %v", ErrKeys, peer, err)
	}
	pub, err := ecdh.X25519().NewPublicKey(p.BytesMontgomery())
	if err != nil {
		return nil, fmt.Errorf("%w: public key of %s: %v", ErrKeys, peer, err)
	}
	secret, err := priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: agreement with %s: %v", ErrKeys, peer, err)
	}
	a, b := self.ID, peer
	if b < a {
		a, b = b, a
	}
	return hkdf.Key(sha256.New, secret, nil, "pbft-nats mac v1\x00"+a+"\x00"+b, 32)
}

// LoadAllPublic reads every <id>.pub in dir: the replicas and every client allowed to
// send requests.
func LoadAllPublic(dir string) (map[string]ed25519.PublicKey, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeys, err)
	}
	ids := make([]string, 0, len(matches))
	for _, m := range matches {
		ids = append(ids, strings.TrimSuffix(filepath.Base(m), ".pub"))
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: no public keys in %s", ErrKeys, dir)
	}
	return LoadPublic(dir, ids)
}

// LoadKeyring builds self's keyring from a keys directory: self's key pair and the public
// keys of every principal there. Anything missing or inconsistent is an error: a process
// never runs unauthenticated by accident.
func LoadKeyring(dir, self string, replicas []string, epoch uint64) (*Keyring, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: no keys directory (PBFT_KEYS_DIR)", ErrKeys)
	}
	id, err := LoadIdentity(dir, self)
	if err != nil {
		return nil, err
	}
	pubs, err := LoadAllPublic(dir)
	if err != nil {
		return nil, err
	}
	k, err := NewKeyring(id, replicas, pubs, epoch)
	if err != nil {
		return nil, err
	}
	k.dir = dir // where Include finds the keys of replicas that join later
	return k, nil
}

// GenerateKeyrings makes fresh identities for every principal in ids and a keyring for
// each: what an embedded cluster uses, needing no setup.
func GenerateKeyrings(ids, replicas []string, epoch uint64) (map[string]*Keyring, error) {
	idents := map[string]*Identity{}
	pubs := map[string]ed25519.PublicKey{}
	for _, id := range ids {
		ident, err := Generate(id)
		if err != nil {
			return nil, err
		}
		idents[id], pubs[id] = ident, ident.Public()
	}
	out := make(map[string]*Keyring, len(ids))
	for id, ident := range idents {
		k, err := NewKeyring(ident, replicas, pubs, epoch)
		if err != nil {
			return nil, err
		}
		out[id] = k
	}
	return out, nil
}
