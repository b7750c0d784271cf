package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
)

// Fuzz keyrings are deterministic (keys derived from the principal's name), so that a
// saved corpus input means the same thing in every run.
var fuzzPrincipals = []string{"gw", "n1", "n2", "n3", "n4"}

func fuzzRings(tb testing.TB) map[string]*Keyring {
	tb.Helper()
	pubs := map[string]ed25519.PublicKey{}
	ids := map[string]*Identity{}
	for _, id := range fuzzPrincipals {
		seed := sha256.Sum256([]byte("fuzz identity " + id))
		ids[id] = &Identity{ID: id, Private: ed25519.NewKeyFromSeed(seed[:])}
		pubs[id] = ids[id].Public()
	}
	out := map[string]*Keyring{}
	for id, ident := range ids {
		k, err := NewKeyring(ident, replicas, pubs, 1000)
		if err != nil {
			tb.Fatal(err)
		}
		out[id] = k
	}
	return out
}

// forget clears k's replay windows, so that each fuzz input starts from the same state.
func forget(k *Keyring) {
	k.mu.Lock()
	k.seen = map[channel]*replayWindow{}
	k.mu.Unlock()
}

var fuzzKinds = []string{"prepare", "commit", "preprepare", "query", "reply", "viewchange"}

// ownView is what receiver checks of an envelope: everything before the tags, and the
// tags, among which it looks for its own in any slot (authenticators are sets). ok is
// false if the envelope does not parse.
func ownView(data []byte) (prefix string, tags []byte, ok bool) {
	if len(data) < 2 {
		return "", nil, false
	}
	d := data[2:]
	if _, rest, ok := takeBytes(d); ok {
		d = rest
	} else {
		return "", nil, false
	}
	if _, n := binary.Uvarint(d); n > 0 {
		d = d[n:]
	} else {
		return "", nil, false
	}
	if _, rest, ok := takeBytes(d); ok {
		d = rest
	} else {
		return "", nil, false
	}
	count, n := binary.Uvarint(d)
	if n <= 0 || count > uint64(len(d)) {
		return "", nil, false
	}
	tags = d[n:]
	return string(data[:len(data)-len(tags)]), tags, true
}

// genuineView is what a receiver may accept: a genuine envelope's prefix, with its own
// tag somewhere among the tags.
type genuineView struct {
	from string // sender/kind
	tag  []byte // the receiver's tag in the genuine envelope
}

// FuzzOpen: opening arbitrary bytes, as from any sender with any kind, never panics and
// never authenticates anything but a genuine envelope. The seeds include genuine
// envelopes; Open may accept one of those (or one differing only in another receiver's
// tag, which this receiver does not check) and nothing else. Every refusal wraps one of
// the reasons the driver counts.
func FuzzOpen(f *testing.F) {
	k, genuine, seeds := fuzzGenuine(f)
	for i, env := range seeds {
		f.Add(env, uint8(i), uint8(i), uint8(i+2))
	}
	f.Add([]byte{}, uint8(0), uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, senderSel, kindSel, receiverSel uint8) {
		checkOpen(t, k, genuine, data, senderSel, kindSel, receiverSel)
	})
}

// FuzzOpenFields is FuzzOpen with the envelope built from fuzzed fields, so that the
// fuzzer reaches lengths and counts (10-byte varints, counts whose product with the tag
// size wraps around) that byte mutations of a genuine envelope rarely produce.
func FuzzOpenFields(f *testing.F) {
	k, genuine, _ := fuzzGenuine(f)
	f.Add(uint8(1), "n1", uint64(1001), []byte("p"), uint16(4), uint8(0), bytes.Repeat([]byte{7}, 4*tagSize), uint8(1), uint8(2))
	f.Add(uint8(0), "gw", uint64(1), []byte{}, uint16(1), uint8(0), make([]byte, tagSize), uint8(0), uint8(3))
	f.Add(uint8(1), "n1", uint64(5), []byte{}, uint16(0), uint8(0x10), []byte{}, uint8(1), uint8(2))
	f.Add(uint8(0), "n2", uint64(0), []byte("x"), uint16(0xffff), uint8(0xff), make([]byte, 2*tagSize), uint8(0), uint8(1))
	f.Fuzz(func(t *testing.T, path uint8, name string, counter uint64, payload []byte, countLo uint16, countHi uint8, tags []byte, kindSel, receiverSel uint8) {
		count := uint64(countLo) | uint64(countHi)<<56 // small counts, and huge ones that wrap
		data := []byte{version, path}
		data = binary.AppendUvarint(data, uint64(len(name)))
		data = append(data, name...)
		data = binary.AppendUvarint(data, counter)
		data = binary.AppendUvarint(data, uint64(len(payload)))
		data = append(data, payload...)
		data = binary.AppendUvarint(data, count)
		data = append(data, tags...)
		senderSel := uint8(255) // unknown, unless the envelope names a principal
		for i, p := range fuzzPrincipals {
			if p == name {
				senderSel = uint8(i)
			}
		}
		checkOpen(t, k, genuine, data, senderSel, kindSel, receiverSel)
	})
}

// fuzzGenuine makes the deterministic keyrings and some genuine envelopes, and records
// what each receiver may accept: the own view of each genuine envelope, by sender/kind.
func fuzzGenuine(f *testing.F) (map[string]*Keyring, map[string]map[string]genuineView, [][]byte) {
	k := fuzzRings(f)
	genuine := map[string]map[string]genuineView{} // receiver -> prefix -> sender/kind and its tag
	seal := func(from, to, kind string, payload []byte) []byte {
		env := k[from].Seal(to, kind, payload)
		receivers := []string{to}
		if to == "" {
			receivers = replicas
		}
		for i, r := range receivers {
			if r == from {
				continue
			}
			prefix, tags, ok := ownView(env)
			if !ok {
				f.Fatalf("ownView of a genuine envelope failed")
			}
			if genuine[r] == nil {
				genuine[r] = map[string]genuineView{}
			}
			genuine[r][prefix] = genuineView{from: from + "/" + kind, tag: tags[i*tagSize : (i+1)*tagSize]}
		}
		return env
	}
	var seeds [][]byte
	for i, from := range []string{"n1", "n2", "n4", "gw"} {
		kind := fuzzKinds[i%len(fuzzKinds)]
		to := ""
		if from == "gw" {
			to, kind = "n3", "query"
		}
		seeds = append(seeds, seal(from, to, kind, []byte("payload of "+from)))
	}
	seeds = append(seeds, seal("n3", "gw", "reply", []byte("OK")), seal("n1", "", "commit", nil))
	return k, genuine, seeds
}

// checkOpen opens data at the receiver chosen by receiverSel, as from the sender and kind
// chosen by senderSel and kindSel (a sender >= 128 is one nobody knows).
func checkOpen(t *testing.T, k map[string]*Keyring, genuine map[string]map[string]genuineView, data []byte, senderSel, kindSel, receiverSel uint8) {
	sender := fuzzPrincipals[int(senderSel)%len(fuzzPrincipals)]
	if senderSel >= 128 {
		sender = "evil"
	}
	kind := fuzzKinds[int(kindSel)%len(fuzzKinds)]
	receiver := fuzzPrincipals[int(receiverSel)%len(fuzzPrincipals)]
	kr := k[receiver]
	forget(kr)
	orig := bytes.Clone(data)
	payload, err := kr.Open(sender, kind, data)
	if !bytes.Equal(data, orig) {
		t.Fatal("Open modified its input")
	}
	if err != nil {
		if payload != nil {
			t.Fatalf("Open returned a payload with error %v", err)
		}
		for _, reason := range []error{ErrMalformed, ErrUnknownSender, ErrSenderMismatch, ErrBadMAC, ErrReplay} {
			if errors.Is(err, reason) {
				return
			}
		}
		t.Fatalf("error %v wraps none of the reasons", err)
	}
	prefix, tags, ok := ownView(data)
	if !ok {
		t.Fatalf("%s accepted an envelope that does not parse: %x", receiver, data)
	}
	if got := genuine[receiver][prefix]; got.from != sender+"/"+kind || !hasTag(tags, got.tag, -1) {
		t.Fatalf("%s authenticated a forged envelope as %s/%s (genuine: %q): %x", receiver, sender, kind, got.from, data)
	}
	if _, err := kr.Open(sender, kind, data); !errors.Is(err, ErrReplay) {
		t.Fatalf("second Open of the same envelope: %v, want ErrReplay", err)
	}
}

// FuzzBitFlip: a genuine envelope (direct or broadcast, any payload) with any single bit
// flipped is refused by its receiver. The one exception is inherent to MAC
// authenticators: a flip inside another receiver's tag of a broadcast is not this
// receiver's to check, so it accepts the unchanged payload, and the receiver that tag is
// for refuses it. A refused copy never uses up the genuine envelope's counter.
func FuzzBitFlip(f *testing.F) {
	k := fuzzRings(f)
	f.Add([]byte("payload"), uint8(0), uint8(1), uint8(2), uint32(0))
	f.Add([]byte{}, uint8(3), uint8(0), uint8(0), uint32(17))
	f.Add(bytes.Repeat([]byte{0xff}, 300), uint8(1), uint8(4), uint8(3), uint32(2500))
	f.Add([]byte("set x=1"), uint8(0), uint8(3), uint8(128), uint32(100))
	f.Fuzz(func(t *testing.T, payload []byte, senderSel, receiverSel, kindSel uint8, bit uint32) {
		sender := fuzzPrincipals[int(senderSel)%len(fuzzPrincipals)]
		receiver := fuzzPrincipals[int(receiverSel)%len(fuzzPrincipals)]
		if receiver == sender {
			return
		}
		kind := fuzzKinds[int(kindSel)%len(fuzzKinds)]
		to := receiver
		broadcast := kindSel >= 128 && receiver != "gw" // broadcasts go to the replicas
		if broadcast {
			to = ""
		}
		env := k[sender].Seal(to, kind, payload)
		bad := bytes.Clone(env)
		i := int(bit % uint32(len(env)*8))
		bad[i/8] ^= 1 << (i % 8)

		kr := k[receiver]
		forget(kr)
		got, err := kr.Open(sender, kind, bad)
		tagsAt := len(env) - tagSize
		pos := 0
		if broadcast {
			tagsAt = len(env) - len(replicas)*tagSize
			for j, r := range replicas {
				if r == receiver {
					pos = j
				}
			}
		}
		own := tagsAt + pos*tagSize
		otherTag := i/8 >= tagsAt && (i/8 < own || i/8 >= own+tagSize)
		switch {
		case otherTag:
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("flip in another receiver's tag: %q, %v; want the payload", got, err)
			}
			owner := k[replicas[(i/8-tagsAt)/tagSize]]
			if owner.self.ID != sender {
				forget(owner)
				if _, err := owner.Open(sender, kind, bad); !errors.Is(err, ErrBadMAC) {
					t.Fatalf("%s accepted its own tampered tag: %v", owner.self.ID, err)
				}
			}
			forget(kr)
		case err == nil:
			t.Fatalf("%s accepted %s's envelope with bit %d flipped (byte %d of %d)", receiver, sender, i, i/8, len(env))
		}
		if got, err := kr.Open(sender, kind, env); err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("genuine envelope refused after a tampered copy: %q, %v", got, err)
		}
	})
}
