package pbft

// The decoding side of codec.go: every message the bus carries is parsed here, with
// limits, so that a malformed or hostile input is an error and never a panic.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// ErrDecode reports bytes that are not a well-formed message.
var ErrDecode = errors.New("pbft: malformed message")

// Decoding limits keep a hostile peer from making a replica allocate without bound.
const (
	maxStringLen = 1 << 10 // ids and client names
	maxBlobLen   = 8 << 20 // operations and results
	maxListLen   = 1 << 16 // batches, P/Q sets, view-change sets
)

// Unmarshal decodes one message. Any malformation (short input, trailing bytes, an
// oversized field, an unknown kind) returns an error wrapping ErrDecode; it never panics.
func Unmarshal(data []byte) (Message, error) {
	d := decoder{buf: data}
	m := d.message()
	if d.err == nil && len(d.buf) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// decodeReply decodes a reply message (as Unmarshal would) into m.
func decodeReply(data []byte, m *Reply) error {
	d := decoder{buf: data}
	if len(d.buf) == 0 || Kind(d.buf[0]) != KindReply {
		if len(d.buf) == 0 {
			return fmt.Errorf("%w: empty", ErrDecode)
		}
		return fmt.Errorf("node: %s among replies", Kind(d.buf[0]))
	}
	d.buf = d.buf[1:]
	d.reply(m)
	if d.err == nil && len(d.buf) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

func (d *decoder) reply(m *Reply) {
	m.View, m.Seq, m.Client, m.Timestamp = d.uvarint(), d.uvarint(), d.string(), d.uvarint()
	m.Replica, m.Result = d.replica(), d.bytes()
	m.ReadOnly, m.Conf = d.replyFlags()
}

type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrDecode, what)
	}
	d.buf = nil
}

func (d *decoder) message() Message {
	if len(d.buf) == 0 {
		d.fail("empty")
		return nil
	}
	k := Kind(d.buf[0])
	d.buf = d.buf[1:]
	switch k {
	case KindRequest:
		m := d.request()
		m.ReadOnly = d.readOnlyFlag()
		return m
	case KindPrePrepare:
		return d.prePrepare()
	case KindPrepare:
		m := &Prepare{}
		m.View, m.Seq, m.Digest, m.Replica = d.vote()
		return m
	case KindCommit:
		m := &Commit{}
		m.View, m.Seq, m.Digest, m.Replica = d.vote()
		return m
	case KindReply:
		m := &Reply{}
		d.reply(m)
		return m
	case KindCheckpoint:
		return &Checkpoint{Seq: d.uvarint(), State: d.digest(), Replica: d.replica()}
	case KindStatus:
		return &StatusMsg{View: d.uvarint(), LowWater: d.uvarint(), LastExecuted: d.uvarint(), Replica: d.replica()}
	case KindFetch:
		return &Fetch{Seq: d.uvarint(), Offset: d.uvarint(), Replica: d.replica()}
	case KindState:
		m := &State{Seq: d.uvarint(), Offset: d.uvarint(), Total: d.uvarint()}
		if b := d.take(MaxSnapshot); len(b) > 0 {
			m.Snapshot = b
		}
		m.Replica = d.replica()
		return m
	case KindViewChange:
		return d.viewChange()
	case KindNewView:
		return d.newView()
	case KindFetchBatch:
		return &FetchBatch{Seq: d.uvarint(), Digest: d.digest(), Replica: d.replica()}
	case KindBatch:
		return &BatchMsg{Seq: d.uvarint(), Digest: d.digest(), Batch: d.batch(), Replica: d.replica()}
	case KindCommitted:
		return &Committed{View: d.uvarint(), Seq: d.uvarint(), Digest: d.digest(), Batch: d.batch(), Replica: d.replica()}
	case KindTransition:
		return d.transition()
	case KindChain:
		return d.chain()
	case KindAskAdmission:
		return d.askAdmission()
	}
	d.fail(fmt.Sprintf("unknown kind %d", k))
	return nil
}

func (d *decoder) request() *Request {
	r := &Request{}
	d.requestNamed(r, &requestNames{}, 1, 0)
	return r
}

func (d *decoder) prePrepare() *PrePrepare {
	return &PrePrepare{View: d.uvarint(), Seq: d.uvarint(), Digest: d.digest(), Batch: d.batch()}
}

// batch decodes a batch's requests into one allocation (they live and die with their
// pre-prepare), and their names through one requestNames: about one allocation for all
// the batch's names instead of one or two per request.
func (d *decoder) batch() []*Request {
	n := d.count()
	if n > len(d.buf)/minBatchEntry {
		// A count the input cannot hold is a lie, and no reason to allocate for it.
		d.fail("batch longer than its bytes")
		return nil
	}
	if n == 0 {
		return nil
	}
	b := make([]*Request, 0, n)
	reqs := make([]Request, n)
	var names requestNames
	for i := 0; i < n && d.err == nil; i++ {
		r := &reqs[i]
		d.requestNamed(r, &names, n-i, 0)
		b = append(b, r)
	}
	return b
}

// requestNamed decodes a request's fields (without the read-only flag) into r, its names
// through names; left is how many requests of the message are left, this one included,
// and after how many bytes of the message follow d's input.
func (d *decoder) requestNamed(r *Request, names *requestNames, left, after int) {
	r.Gateway = names.gateway(d.take(maxStringLen))
	r.Client = names.client(d.take(maxStringLen), left, len(d.buf)+after)
	r.Timestamp, r.Op, r.Auth = d.uvarint(), d.bytes(), d.bytes()
}

// requestNames shares the names of one message's requests. Gateways repeat (a batch holds
// the requests of a few gateways), so the first few are kept and shared. Client names are
// copied into one buffer: a strings.Builder never rewrites the bytes it holds, so each
// name taken from it stays valid (and immutable) as it grows. A name kept past its
// message keeps the buffer, a few bytes a request, alive: the client table keys its own
// copies for that reason; the primary's returning clients and the latency metric keep
// names for a few ticks at most.
type requestNames struct {
	gateways [4]string
	known    int
	clients  strings.Builder
}

func (s *requestNames) gateway(g []byte) string {
	for _, name := range s.gateways[:s.known] {
		if string(g) == name {
			return name
		}
	}
	if len(g) == 0 {
		return ""
	}
	name := string(g)
	if s.known < len(s.gateways) {
		s.gateways[s.known] = name
		s.known++
	}
	return name
}

// client copies c into the buffer, sized at the first name for left names like it (no
// more than the rest of the input, rest bytes, can hold).
func (s *requestNames) client(c []byte, left, rest int) string {
	if len(c) == 0 {
		return ""
	}
	if s.clients.Cap() == 0 {
		s.clients.Grow(min(len(c)*left, len(c)+rest))
	}
	start := s.clients.Len()
	s.clients.Write(c)
	return s.clients.String()[start:]
}

// minBatchEntry is the fewest bytes a request takes in a batch: one for each of its five
// fields.
const minBatchEntry = 5

func (d *decoder) vote() (uint64, uint64, Digest, int) {
	return d.uvarint(), d.uvarint(), d.digest(), d.replica()
}

func (d *decoder) viewChange() *ViewChange {
	v := &ViewChange{NewView: d.uvarint(), Replica: d.replica(), LowWater: d.uvarint()}
	for i, n := 0, d.count(); i < n && d.err == nil; i++ {
		v.Checkpoints = append(v.Checkpoints, CheckpointClaim{Seq: d.uvarint(), State: d.digest()})
	}
	for i, n := 0, d.count(); i < n && d.err == nil; i++ {
		v.P = append(v.P, Prepared{Seq: d.uvarint(), View: d.uvarint(), Digest: d.digest(), Batch: d.batch()})
	}
	for i, n := 0, d.count(); i < n && d.err == nil; i++ {
		v.Q = append(v.Q, PrePrepared{Seq: d.uvarint(), View: d.uvarint(), Digest: d.digest()})
	}
	v.Sig = d.bytes()
	return v
}

func (d *decoder) newView() *NewView {
	n := &NewView{View: d.uvarint(), Replica: d.replica()}
	for i, c := 0, d.count(); i < c && d.err == nil; i++ {
		n.ViewChanges = append(n.ViewChanges, d.viewChange())
	}
	for i, c := 0, d.count(); i < c && d.err == nil; i++ {
		n.PrePrepares = append(n.PrePrepares, d.prePrepare())
	}
	n.Sig = d.bytes()
	return n
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) replica() int {
	v := d.uvarint()
	if v > maxListLen {
		d.fail("replica index out of range")
		return 0
	}
	return int(v)
}

func (d *decoder) count() int {
	v := d.uvarint()
	// Every element takes at least one byte, so a count above the remaining input is a lie.
	if v > maxListLen || v > uint64(len(d.buf)) {
		d.fail("list too long")
		return 0
	}
	return int(v)
}

func (d *decoder) take(limit uint64) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > limit || n > uint64(len(d.buf)) {
		d.fail("field too long")
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) string() string { return string(d.take(maxStringLen)) }

// bytes returns a sub-slice of the input (no copy): callers hand Unmarshal a buffer they
// no longer use, which the bus guarantees.
func (d *decoder) bytes() []byte {
	b := d.take(maxBlobLen)
	if len(b) == 0 {
		return nil
	}
	return b
}

func (d *decoder) digest() Digest {
	var x Digest
	if d.err != nil {
		return x
	}
	if len(d.buf) < len(x) {
		d.fail("short digest")
		return x
	}
	copy(x[:], d.buf)
	d.buf = d.buf[len(x):]
	return x
}
