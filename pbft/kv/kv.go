package kv

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrBadSnapshot is wrapped by every error Restore returns.
var ErrBadSnapshot = errors.New("kv: bad snapshot")

// snapshotMagic starts every encoding so that Restore can reject unrelated
// bytes early and so that the format can be versioned.
const snapshotMagic = "pbft-kv/1\n"

// maxQuoted bounds how much of a bad operation is echoed back in an error
// result, so a huge garbage operation cannot produce a huge reply.
const maxQuoted = 64

// Absent is the result of get for a key that is not set. It is not UTF-8, so no value
// (values are text) and no error result equals it: clients tell an absent key from one
// set to "". Every replica returns the same bytes, so replies still match.
const Absent = "\xffabsent"

// Store is the key-value state machine. The zero value is not usable; call New.
type Store struct {
	m     map[string]*entry
	order keyOrder
}

// New returns an empty store.
func New() *Store {
	return &Store{m: make(map[string]*entry)}
}

// Len returns the number of keys in the store.
func (s *Store) Len() int { return len(s.m) }

// Execute applies one operation and returns its result; see the package
// documentation for the operations. Malformed operations are not Go errors:
// they return a result starting with "error: " and leave the state unchanged,
// because the result is part of the replicated output. The returned slice is
// never nil and is owned by the caller.
func (s *Store) Execute(op []byte) []byte {
	// Reject non-UTF-8 up front so every key and value stored is text (clients and
	// the JSON gateway see them as text).
	if !validText(op) {
		return []byte("error: operation is not valid UTF-8")
	}
	verb, arg, hasArg := bytes.Cut(op, []byte{' '})
	switch string(verb) { // no allocation: the compiler special-cases switch on string(bytes)
	case "set", "get", "del":
	default:
		if len(op) == 0 {
			return []byte("error: empty operation")
		}
		return errResult("unknown operation %s", quote(verb))
	}
	if !hasArg {
		return errResult("%s needs a key", verb)
	}

	switch verb[0] {
	case 's':
		eq := bytes.IndexByte(arg, '=')
		if eq < 0 {
			return []byte("error: set needs KEY=VALUE: no '=' found")
		}
		if eq == 0 {
			return []byte("error: empty key")
		}
		// A present key keeps its entry (the lookup with string(bytes) does not
		// allocate); a new one gets its own key string, which no later value keeps.
		if e, ok := s.m[string(arg[:eq])]; ok {
			e.value = string(arg[eq+1:])
			return []byte("OK")
		}
		e := &entry{key: string(arg[:eq]), value: string(arg[eq+1:])}
		s.m[e.key] = e
		s.order.added(e, len(s.m))
		return []byte("OK")
	case 'g':
		if len(arg) == 0 {
			return []byte("error: empty key")
		}
		e, ok := s.m[string(arg)] // lookup with string(bytes) does not allocate
		if !ok {
			return []byte(Absent)
		}
		return []byte(e.value)
	default: // del
		if len(arg) == 0 {
			return []byte("error: empty key")
		}
		// Look up first: lookups with string(arg) do not allocate, so an
		// absent key costs nothing.
		if e, ok := s.m[string(arg)]; ok {
			e.gone = true
			delete(s.m, e.key)
		}
		return []byte("OK")
	}
}

func errResult(format string, args ...any) []byte {
	return fmt.Appendf([]byte("error: "), format, args...)
}

// validText reports whether b is UTF-8 in which lone surrogates may stand (as 3-byte
// sequences, "generalized UTF-8"): JSON text can hold a lone \ud800, Python keeps it,
// and the gateway carries it that way, so the store takes it like any character.
func validText(b []byte) bool {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			if len(b) < 3 || b[0] != 0xed || b[1] < 0xa0 || b[1] > 0xbf || b[2] < 0x80 || b[2] > 0xbf {
				return false
			}
			size = 3
		}
		b = b[size:]
	}
	return true
}

// quote quotes b for an error result, truncating long input at a rune
// boundary (b is text here).
func quote(b []byte) string {
	if len(b) <= maxQuoted {
		return fmt.Sprintf("%q", b)
	}
	n := maxQuoted
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return fmt.Sprintf("%q...", b[:n])
}

// Snapshot returns the canonical encoding of the whole state:
//
//	"pbft-kv/1\n" uvarint(count) { uvarint(len(key)) key uvarint(len(value)) value }
//
// with keys in strictly increasing byte order and minimal varints, so equal
// states have equal encodings and vice versa. Digest hashes these bytes.
func (s *Store) Snapshot() []byte {
	entries := s.order.settle(len(s.m))
	size := len(snapshotMagic) + binary.MaxVarintLen64
	for _, e := range entries {
		size += 2*binary.MaxVarintLen64 + len(e.key) + len(e.value)
	}
	return encode(make([]byte, 0, size), entries, nil)
}

// Digest returns the SHA-256 of Snapshot(). It is O(state) but streams the
// encoding through the hash in chunks rather than materialising it.
func (s *Store) Digest() [32]byte {
	h := sha256.New()
	buf := encode(make([]byte, 0, 1<<10), s.order.settle(len(s.m)), func(b []byte) { h.Write(b) })
	h.Write(buf)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// digestChunk bounds the buffer Digest hashes at a time (except for single
// entries larger than it).
const digestChunk = 32 << 10

// encode appends the canonical encoding of entries (the store's, in key order) to dst.
// If flush is non-nil it is handed the buffer whenever it reaches digestChunk bytes, and
// the buffer is then reused; the unflushed tail is returned.
func encode(dst []byte, entries []*entry, flush func([]byte)) []byte {
	dst = append(dst, snapshotMagic...)
	dst = binary.AppendUvarint(dst, uint64(len(entries)))
	for _, e := range entries {
		dst = binary.AppendUvarint(dst, uint64(len(e.key)))
		dst = append(dst, e.key...)
		dst = binary.AppendUvarint(dst, uint64(len(e.value)))
		dst = append(dst, e.value...)
		if flush != nil && len(dst) >= digestChunk {
			flush(dst)
			dst = dst[:0]
		}
	}
	return dst
}

// Restore replaces the state with the one encoded in b (as produced by
// Snapshot). It accepts only canonical encodings of states Execute could have
// reached — sorted unique non-empty keys without '=', valid UTF-8, minimal
// varints, no trailing bytes — because the snapshot may come from a faulty
// replica. On error the state is unchanged and the error wraps ErrBadSnapshot.
func (s *Store) Restore(b []byte) error {
	if !bytes.HasPrefix(b, []byte(snapshotMagic)) {
		return fmt.Errorf("%w: missing header", ErrBadSnapshot)
	}
	r := reader{b: b[len(snapshotMagic):]}
	n, err := r.uvarint()
	if err != nil {
		return fmt.Errorf("%w: entry count: %v", ErrBadSnapshot, err)
	}
	// Each entry takes at least two bytes; checking this first stops a
	// forged count from making us allocate a huge map.
	if n > uint64(len(r.b))/2 {
		return fmt.Errorf("%w: entry count %d exceeds remaining %d bytes", ErrBadSnapshot, n, len(r.b))
	}
	m := make(map[string]*entry, n)
	entries := make([]*entry, 0, n)
	var prev []byte
	for i := range n {
		k, err := r.bytes()
		if err != nil {
			return fmt.Errorf("%w: entry %d key: %v", ErrBadSnapshot, i, err)
		}
		v, err := r.bytes()
		if err != nil {
			return fmt.Errorf("%w: entry %d value: %v", ErrBadSnapshot, i, err)
		}
		switch {
		case len(k) == 0:
			return fmt.Errorf("%w: entry %d: empty key", ErrBadSnapshot, i)
		case i > 0 && bytes.Compare(prev, k) >= 0:
			return fmt.Errorf("%w: entry %d: keys not strictly increasing", ErrBadSnapshot, i)
		case bytes.IndexByte(k, '=') >= 0:
			return fmt.Errorf("%w: entry %d: key contains '='", ErrBadSnapshot, i)
		case !validText(k) || !validText(v):
			return fmt.Errorf("%w: entry %d: not valid UTF-8", ErrBadSnapshot, i)
		}
		prev = k
		e := &entry{key: string(k), value: string(v)}
		m[e.key] = e
		entries = append(entries, e)
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrBadSnapshot, len(r.b))
	}
	s.m = m
	s.order.reset(entries)
	return nil
}

type reader struct{ b []byte }

var errTruncated = errors.New("truncated")

func (r *reader) uvarint() (uint64, error) {
	x, n := binary.Uvarint(r.b)
	switch {
	case n == 0:
		return 0, errTruncated
	case n < 0:
		return 0, errors.New("varint overflows 64 bits")
	case n != varintLen(x):
		// binary.Uvarint accepts padded forms like 0x80 0x00; allowing
		// them would give one state several encodings.
		return 0, errors.New("non-minimal varint")
	}
	r.b = r.b[n:]
	return x, nil
}

func (r *reader) bytes() ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)) {
		return nil, fmt.Errorf("%w: length %d exceeds remaining %d bytes", errTruncated, n, len(r.b))
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b, nil
}

func varintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// IsReadOnly reports whether op is a get (well-formed or not): the only operation that
// never changes the store, so replicas may answer it without ordering it
// (pbft.ReadOnlyClassifier).
func (s *Store) IsReadOnly(op []byte) bool {
	verb, _, _ := bytes.Cut(op, []byte{' '})
	return string(verb) == "get"
}
