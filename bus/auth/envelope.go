package auth

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
	"sync"
	"sync/atomic"
)

// Reasons a message fails authentication; the driver counts drops by these.
var (
	ErrMalformed      = errors.New("auth: malformed envelope")
	ErrUnknownSender  = errors.New("auth: unknown sender")
	ErrSenderMismatch = errors.New("auth: sender does not match subject")
	ErrBadMAC         = errors.New("auth: bad MAC")
	ErrBadSignature   = errors.New("auth: bad signature")
	ErrReplay         = errors.New("auth: stale or replayed")
)

const (
	version = 1
	tagSize = 16 // HMAC-SHA256 truncated: 128-bit tags, as MAC authenticators use
)

// Paths a message can take; the tag covers it, and replay counters are kept per path
// because NATS orders each path, not the two together.
const (
	pathDirect    byte = 0
	pathBroadcast byte = 1
	pathRequest   byte = 2 // a request authenticator, not an envelope
)

// Keyring holds one principal's identity, everyone's public keys, and the pairwise MAC
// keys derived from them. Seal and Open are safe for concurrent use, also with Include.
type Keyring struct {
	self *Identity
	ring atomic.Pointer[ring] // replaced whole by Include (ring.go)
	dir  string               // the keys directory Include learns new principals from
	grow sync.Mutex           // serialises Include

	counter atomic.Uint64
	mu      sync.Mutex
	seen    map[channel]*replayWindow // counters accepted per sender and path
}

type channel struct {
	sender    string
	broadcast bool
}

// NewKeyring derives the MAC keys self shares with every principal in pubs. replicas
// lists the replicas in order; epoch (e.g. the process start time in nanoseconds) seeds
// the replay counter so that a restarted sender's counters stay above its old ones.
func NewKeyring(self *Identity, replicas []string, pubs map[string]ed25519.PublicKey, epoch uint64) (*Keyring, error) {
	if own, ok := pubs[self.ID]; ok && !own.Equal(self.Public()) {
		return nil, fmt.Errorf("%w: the public key listed for %s is not its own", ErrKeys, self.ID)
	}
	all := make(map[string]ed25519.PublicKey, len(pubs)+1)
	for id, p := range pubs {
		all[id] = p
	}
	all[self.ID] = self.Public() // so that its own signatures (in forwarded evidence) verify
	pubs = all
	k := &Keyring{self: self, seen: map[channel]*replayWindow{}}
	r := &ring{replicas: slices.Clone(replicas), selfPos: slices.Index(replicas, self.ID), pubs: pubs, macs: map[string]*macState{}}
	for _, id := range replicas {
		if _, ok := pubs[id]; !ok {
			return nil, fmt.Errorf("%w: no public key for replica %s", ErrKeys, id)
		}
	}
	for id, pub := range pubs {
		if id == self.ID {
			continue
		}
		key, err := macKey(self, id, pub)
		if err != nil {
			return nil, err
		}
		r.macs[id] = newMacState(key)
	}
	k.ring.Store(r)
	k.counter.Store(epoch)
	return k, nil
}

// Self returns the keyring's identity.
func (k *Keyring) Self() *Identity { return k.self }

// Knows reports whether id is a known principal.
func (k *Keyring) Knows(id string) bool {
	_, ok := k.ring.Load().pubs[id]
	return ok || id == k.self.ID
}

// macState is one pairwise key's HMAC, pooled: hmac.New is the expensive part of a tag,
// and Reset brings a keyed HMAC back to its keyed start. Each pooled HMAC carries its own
// scratch space, so that a tag allocates nothing (a stack buffer passed to Write escapes).
type macState struct{ pool sync.Pool }

type macScratch struct {
	h   hash.Hash
	hdr [192]byte // the tagged header and digest, written at once
	sum [sha256.Size]byte
}

func newMacState(key []byte) *macState {
	m := &macState{}
	m.pool.New = func() any { return &macScratch{h: hmac.New(sha256.New, key)} }
	return m
}

// tagVersion begins a tag's input. Version 1 also listed the sender's and receiver's ids,
// which took the input past 55 bytes, SHA-256's one-block limit, and so cost each tag a
// third compression.
const tagVersion = 2

// tag is the MAC of what a tag covers: its path, the direction between the two
// principals, the kind, the counter and the digest. The ids themselves are not hashed:
// the key is the pair's own (macKey binds both ids), so the direction is all that is
// left to tell apart, and without them the input of every kind of up to 10 bytes fits
// one SHA-256 block (55 bytes): two compressions per tag, not three.
func (k *Keyring) tag(dst []byte, st *macState, receiver, kind string, counter uint64, digest []byte, sender string, path byte) []byte {
	s := st.pool.Get().(*macScratch)
	s.h.Reset()
	// The digest is copied, not written on its own: a slice passed to Write escapes, and
	// the callers' digests live on their stacks.
	s.h.Write(appendTagInput(s.hdr[:0], sender > receiver, kind, counter, digest, path))
	dst = append(dst, s.h.Sum(s.sum[:0])[:tagSize]...)
	st.pool.Put(s)
	return dst
}

// appendTagInput appends what a tag hashes; reverse says which of the pair sends, so
// that a tag is not valid the other way round.
func appendTagInput(dst []byte, reverse bool, kind string, counter uint64, digest []byte, path byte) []byte {
	var dir byte
	if reverse {
		dir = 1
	}
	dst = append(dst, tagVersion, path, dir)
	dst = binary.AppendUvarint(dst, uint64(len(kind)))
	dst = append(dst, kind...)
	dst = binary.AppendUvarint(dst, counter)
	return append(dst, digest...)
}

// Seal wraps payload for receiver to (or, if to is "", for every replica) with a fresh
// counter and the MAC tags that let each receiver check it.
func (k *Keyring) Seal(to, kind string, payload []byte) []byte {
	tags := 1
	if to == "" {
		tags = len(k.ring.Load().replicas)
	}
	return k.AppendSeal(make([]byte, 0, 16+len(k.self.ID)+len(payload)+tags*tagSize), to, kind, payload)
}

// AppendSeal appends Seal's envelope to dst: a sender that reuses one buffer for all it
// sends (the transport does not keep it) allocates nothing per message.
func (k *Keyring) AppendSeal(dst []byte, to, kind string, payload []byte) []byte {
	counter := k.counter.Add(1)
	digest := sha256.Sum256(payload)
	path := pathDirect
	if to == "" {
		path = pathBroadcast
	}
	out := append(dst, version, path)
	out = binary.AppendUvarint(out, uint64(len(k.self.ID)))
	out = append(out, k.self.ID...)
	out = binary.AppendUvarint(out, counter)
	out = binary.AppendUvarint(out, uint64(len(payload)))
	out = append(out, payload...)
	r := k.ring.Load()
	if to != "" {
		out = binary.AppendUvarint(out, 1)
		return k.appendTag(out, r, to, kind, counter, digest[:], path)
	}
	out = binary.AppendUvarint(out, uint64(len(r.replicas)))
	for _, t := range r.replicas {
		out = k.appendTag(out, r, t, kind, counter, digest[:], path)
	}
	return out
}

func (k *Keyring) appendTag(out []byte, r *ring, receiver, kind string, counter uint64, digest []byte, path byte) []byte {
	key := r.macs[receiver]
	if key == nil { // to oneself: a slot nobody checks
		var zero [tagSize]byte
		return append(out, zero[:]...)
	}
	return k.tag(out, key, receiver, kind, counter, digest, k.self.ID, path)
}

// Open checks an envelope that arrived on a subject naming sender and kind. It returns
// the payload, or an error wrapping one of the reasons above.
func (k *Keyring) Open(sender, kind string, data []byte) ([]byte, error) {
	d := data
	if len(d) < 2 || d[0] != version || d[1] > pathBroadcast {
		return nil, fmt.Errorf("%w: version", ErrMalformed)
	}
	path := d[1]
	broadcast := path == pathBroadcast
	d = d[2:]
	name, d, ok := takeBytes(d)
	if !ok {
		return nil, ErrMalformed
	}
	counter, n := binary.Uvarint(d)
	if n <= 0 {
		return nil, ErrMalformed
	}
	d = d[n:]
	payload, d, ok := takeBytes(d)
	if !ok {
		return nil, ErrMalformed
	}
	count, n := binary.Uvarint(d)
	// Compare by division: count*tagSize can wrap around, and a huge count whose product
	// wraps to the tags' length would otherwise pass and index past them.
	if n <= 0 || uint64(len(d)-n)%tagSize != 0 || uint64(len(d)-n)/tagSize != count {
		return nil, fmt.Errorf("%w: authenticator size", ErrMalformed)
	}
	tags := d[n:]
	if string(name) != sender {
		return nil, fmt.Errorf("%w: envelope of %q on a subject of %q", ErrSenderMismatch, name, sender)
	}
	r := k.ring.Load()
	key := r.macs[sender]
	if key == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownSender, sender)
	}
	if !broadcast && count != 1 {
		return nil, fmt.Errorf("%w: point-to-point message with %d tags", ErrMalformed, count)
	}
	digest := sha256.Sum256(payload)
	var wantBuf [tagSize]byte
	want := k.tag(wantBuf[:0], key, k.self.ID, kind, counter, digest[:], sender, path)
	hint := 0
	if broadcast {
		hint = r.selfPos
	}
	if !hasTag(tags, want, hint) {
		return nil, fmt.Errorf("%w: no tag for %s", ErrBadMAC, k.self.ID)
	}
	ch := channel{sender, broadcast}
	k.mu.Lock()
	defer k.mu.Unlock()
	w := k.seen[ch]
	if w == nil {
		w = &replayWindow{}
		k.seen[ch] = w
	}
	if !w.accept(counter) {
		return nil, fmt.Errorf("%w: counter %d (newest %d)", ErrReplay, counter, w.high)
	}
	return payload, nil
}

// replayWindowSize is how far below the newest counter a message may still arrive: a
// sender seals on several goroutines, so its counters reach the bus slightly out of order.
const replayWindowSize = 1024

// replayWindow accepts each counter once, and nothing older than the window (as IPsec's
// anti-replay window does).
type replayWindow struct {
	high  uint64
	slots [replayWindowSize]uint64
}

func (w *replayWindow) accept(c uint64) bool {
	if c == 0 || c+replayWindowSize <= w.high {
		return false
	}
	slot := &w.slots[c%replayWindowSize]
	if *slot == c {
		return false
	}
	*slot = c
	if c > w.high {
		w.high = c
	}
	return true
}

func takeBytes(d []byte) ([]byte, []byte, bool) {
	l, n := binary.Uvarint(d)
	if n <= 0 || l > uint64(len(d)-n) {
		return nil, nil, false
	}
	return d[n : n+int(l)], d[n+int(l):], true
}

// RequestTags is a client's authenticator for a request: one tag per replica over the
// request's identity and operation, so every backup can check a request that the primary
// relays in a pre-prepare, and a faulty primary cannot invent or alter one.
func (k *Keyring) RequestTags(requestDigest []byte) []byte {
	ring := k.ring.Load()
	out := make([]byte, 0, len(ring.replicas)*tagSize)
	for _, r := range ring.replicas {
		key := ring.macs[r]
		if key == nil {
			out = append(out, make([]byte, tagSize)...)
			continue
		}
		out = k.tag(out, key, r, "request", 0, requestDigest, k.self.ID, pathRequest)
	}
	return out
}

// VerifyRequest checks this replica's tag in a request authenticator from client.
func (k *Keyring) VerifyRequest(client string, requestDigest, tags []byte) error {
	r := k.ring.Load()
	key := r.macs[client]
	if key == nil {
		return fmt.Errorf("%w: client %q", ErrUnknownSender, client)
	}
	if len(tags) == 0 || len(tags)%tagSize != 0 {
		return fmt.Errorf("%w: request authenticator of %d bytes", ErrBadMAC, len(tags))
	}
	var wantBuf [tagSize]byte
	want := k.tag(wantBuf[:0], key, k.self.ID, "request", 0, requestDigest, client, pathRequest)
	if !hasTag(tags, want, r.selfPos) {
		return fmt.Errorf("%w: request authenticator has no tag for %s", ErrBadMAC, k.self.ID)
	}
	return nil
}

// Sign signs msg with this principal's identity.
func (k *Keyring) Sign(msg []byte) []byte { return ed25519.Sign(k.self.Private, msg) }

// Verify checks signer's signature over msg.
func (k *Keyring) Verify(signer string, msg, sig []byte) error {
	pub, ok := k.ring.Load().pubs[signer]
	if !ok {
		return fmt.Errorf("%w: signer %q", ErrUnknownSender, signer)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return ErrBadSignature
	}
	return nil
}
