package pbft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// ErrDecode reports bytes that are not a well-formed message.
var ErrDecode = errors.New("pbft: malformed message")

// Decoding limits keep a hostile peer from making a replica allocate without bound.
const (
	maxStringLen = 1 << 10 // ids and client names
	maxBlobLen   = 8 << 20 // operations and results
	maxListLen   = 1 << 16 // batches, P/Q sets, view-change sets
)

// MaxSnapshot bounds the replicated state (a checkpoint snapshot) a replica takes; it is
// the durable log's record limit too.
const MaxSnapshot = 1 << 30

// Marshal encodes m as its kind byte followed by its fields. The encoding is canonical:
// equal messages give equal bytes, which signatures and digests rely on.
func Marshal(m Message) []byte { return AppendMessage(nil, m) }

// AppendMessage appends the encoding of m to dst.
func AppendMessage(dst []byte, m Message) []byte {
	dst = append(dst, byte(m.Kind()))
	switch m := m.(type) {
	case *Request:
		dst = appendRequest(dst, m)
		dst = appendReadOnlyFlag(dst, m.ReadOnly)
	case *PrePrepare:
		dst = appendPrePrepare(dst, m)
	case *Prepare:
		dst = appendVote(dst, m.View, m.Seq, m.Digest, m.Replica)
	case *Commit:
		dst = appendVote(dst, m.View, m.Seq, m.Digest, m.Replica)
	case *Reply:
		dst = appendUvarint(dst, m.View)
		dst = appendUvarint(dst, m.Seq)
		dst = appendString(dst, m.Client)
		dst = appendUvarint(dst, m.Timestamp)
		dst = appendUvarint(dst, uint64(m.Replica))
		dst = appendBytes(dst, m.Result)
		dst = appendReplyFlags(dst, m.ReadOnly, m.Conf)
	case *Checkpoint:
		dst = appendUvarint(dst, m.Seq)
		dst = append(dst, m.State[:]...)
		dst = appendUvarint(dst, uint64(m.Replica))
	case *StatusMsg:
		dst = appendUvarint(dst, m.View)
		dst = appendUvarint(dst, m.LowWater)
		dst = appendUvarint(dst, m.LastExecuted)
		dst = appendUvarint(dst, uint64(m.Replica))
	case *Fetch:
		dst = appendUvarint(dst, m.Seq)
		dst = appendUvarint(dst, m.Offset)
		dst = appendUvarint(dst, uint64(m.Replica))
	case *State:
		dst = appendUvarint(dst, m.Seq)
		dst = appendUvarint(dst, m.Offset)
		dst = appendUvarint(dst, m.Total)
		dst = appendBytes(dst, m.Snapshot)
		dst = appendUvarint(dst, uint64(m.Replica))
	case *ViewChange:
		dst = appendViewChange(dst, m, true)
	case *NewView:
		dst = appendNewView(dst, m, true)
	case *FetchBatch:
		dst = appendUvarint(dst, m.Seq)
		dst = append(dst, m.Digest[:]...)
		dst = appendUvarint(dst, uint64(m.Replica))
	case *BatchMsg:
		dst = appendUvarint(dst, m.Seq)
		dst = append(dst, m.Digest[:]...)
		dst = appendBatch(dst, m.Batch)
		dst = appendUvarint(dst, uint64(m.Replica))
	case *Committed:
		dst = appendUvarint(dst, m.View)
		dst = appendUvarint(dst, m.Seq)
		dst = append(dst, m.Digest[:]...)
		dst = appendBatch(dst, m.Batch)
		dst = appendUvarint(dst, uint64(m.Replica))
	default:
		panic(fmt.Sprintf("pbft: Marshal of unknown message %T", m))
	}
	return dst
}

// SignedBytes is what a signature over a view-change or new-view covers: the message
// without its signature. A view-change's signature covers the digests of its prepared
// batches, not the batches, so that a NEW-VIEW can carry the view-changes it decided
// from without their batches (it carries the batches it re-proposes once, in its
// pre-prepares) and their signatures still verify.
func SignedBytes(m Message) []byte {
	switch m := m.(type) {
	case *ViewChange:
		return appendViewChange([]byte{byte(KindViewChange)}, StripBatches(m), false)
	case *NewView:
		return appendNewView([]byte{byte(KindNewView)}, m, false)
	}
	return Marshal(m)
}

// StripBatches returns m without the batches of its prepared entries (m itself if it
// has none); digests, views and the signature stay.
func StripBatches(m *ViewChange) *ViewChange {
	if !slices.ContainsFunc(m.P, func(p Prepared) bool { return len(p.Batch) > 0 }) {
		return m
	}
	c := *m
	c.P = make([]Prepared, len(m.P))
	for i, p := range m.P {
		p.Batch = nil
		c.P[i] = p
	}
	return &c
}

func appendRequest(dst []byte, r *Request) []byte {
	dst = appendString(dst, r.Gateway)
	dst = appendString(dst, r.Client)
	dst = appendUvarint(dst, r.Timestamp)
	dst = appendBytes(dst, r.Op)
	return appendBytes(dst, r.Auth)
}

// readOnlyFlag is an optional last byte of a standalone request or reply: absent for an
// ordered one, so their encoding is what it was before read-only requests existed (an
// older decoder refuses a read-only one as trailing bytes), and 1 for a read-only one.
// Requests inside batches never carry it: a read-only request is never ordered.
const readOnlyFlag = 1

func appendReadOnlyFlag(dst []byte, readOnly bool) []byte {
	if readOnly {
		dst = append(dst, readOnlyFlag)
	}
	return dst
}

// readOnlyFlag reads the optional flag at the end of a message; any other byte there is
// malformed, which keeps the encoding canonical.
func (d *decoder) readOnlyFlag() bool {
	if d.err != nil || len(d.buf) == 0 {
		return false
	}
	if d.buf[0] != readOnlyFlag {
		d.fail("bad read-only flag")
		return false
	}
	d.buf = d.buf[1:]
	return true
}

// confFlag, in a reply's optional last byte, says a configuration number follows: absent
// in configuration 0, so replies of a cluster that never reconfigured encode as before.
const confFlag = 2

func appendReplyFlags(dst []byte, readOnly bool, conf uint64) []byte {
	var f byte
	if readOnly {
		f |= readOnlyFlag
	}
	if conf != 0 {
		f |= confFlag
	}
	if f == 0 {
		return dst
	}
	dst = append(dst, f)
	if conf != 0 {
		dst = appendUvarint(dst, conf)
	}
	return dst
}

// replyFlags reads what appendReplyFlags wrote; a configuration 0 written out, or an
// unknown flag bit, is malformed, which keeps the encoding canonical.
func (d *decoder) replyFlags() (readOnly bool, conf uint64) {
	if d.err != nil || len(d.buf) == 0 {
		return false, 0
	}
	f := d.buf[0]
	d.buf = d.buf[1:]
	if f == 0 || f&^(readOnlyFlag|confFlag) != 0 {
		d.fail("bad reply flags")
		return false, 0
	}
	if f&confFlag != 0 {
		if conf = d.uvarint(); conf == 0 && d.err == nil {
			d.fail("configuration 0 written out")
		}
	}
	return f&readOnlyFlag != 0, conf
}

func appendPrePrepare(dst []byte, p *PrePrepare) []byte {
	dst = appendUvarint(dst, p.View)
	dst = appendUvarint(dst, p.Seq)
	dst = append(dst, p.Digest[:]...)
	return appendBatch(dst, p.Batch)
}

func appendBatch(dst []byte, batch []*Request) []byte {
	dst = appendUvarint(dst, uint64(len(batch)))
	for _, r := range batch {
		dst = appendRequest(dst, r)
	}
	return dst
}

func appendVote(dst []byte, view, seq uint64, d Digest, replica int) []byte {
	dst = appendUvarint(dst, view)
	dst = appendUvarint(dst, seq)
	dst = append(dst, d[:]...)
	return appendUvarint(dst, uint64(replica))
}

func appendViewChange(dst []byte, v *ViewChange, withSig bool) []byte {
	dst = appendUvarint(dst, v.NewView)
	dst = appendUvarint(dst, uint64(v.Replica))
	dst = appendUvarint(dst, v.LowWater)
	dst = appendUvarint(dst, uint64(len(v.Checkpoints)))
	for _, c := range v.Checkpoints {
		dst = appendUvarint(dst, c.Seq)
		dst = append(dst, c.State[:]...)
	}
	dst = appendUvarint(dst, uint64(len(v.P)))
	for _, p := range v.P {
		dst = appendUvarint(dst, p.Seq)
		dst = appendUvarint(dst, p.View)
		dst = append(dst, p.Digest[:]...)
		dst = appendBatch(dst, p.Batch)
	}
	dst = appendUvarint(dst, uint64(len(v.Q)))
	for _, q := range v.Q {
		dst = appendUvarint(dst, q.Seq)
		dst = appendUvarint(dst, q.View)
		dst = append(dst, q.Digest[:]...)
	}
	if withSig {
		dst = appendBytes(dst, v.Sig)
	}
	return dst
}

func appendNewView(dst []byte, n *NewView, withSig bool) []byte {
	dst = appendUvarint(dst, n.View)
	dst = appendUvarint(dst, uint64(n.Replica))
	dst = appendUvarint(dst, uint64(len(n.ViewChanges)))
	for _, v := range n.ViewChanges {
		dst = appendViewChange(dst, v, true)
	}
	dst = appendUvarint(dst, uint64(len(n.PrePrepares)))
	for _, p := range n.PrePrepares {
		dst = appendPrePrepare(dst, p)
	}
	if withSig {
		dst = appendBytes(dst, n.Sig)
	}
	return dst
}

func appendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBytes(dst []byte, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

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
		m := &Reply{View: d.uvarint(), Seq: d.uvarint(), Client: d.string(), Timestamp: d.uvarint(),
			Replica: d.replica(), Result: d.bytes()}
		m.ReadOnly, m.Conf = d.replyFlags()
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
	}
	d.fail(fmt.Sprintf("unknown kind %d", k))
	return nil
}

func (d *decoder) request() *Request {
	return &Request{Gateway: d.string(), Client: d.string(), Timestamp: d.uvarint(), Op: d.bytes(), Auth: d.bytes()}
}

func (d *decoder) prePrepare() *PrePrepare {
	return &PrePrepare{View: d.uvarint(), Seq: d.uvarint(), Digest: d.digest(), Batch: d.batch()}
}

// batch decodes a batch's requests into one allocation (they live and die with their
// pre-prepare), and shares the names of the first few gateways between their requests, as
// a batch holds the requests of a few gateways: about one allocation per request (its
// client's name) instead of three.
func (d *decoder) batch() []*Request {
	n := d.count()
	if n == 0 {
		return nil
	}
	b := make([]*Request, 0, n)
	reqs := make([]Request, n)
	var gateways [4]string
	known := 0
	for i := 0; i < n && d.err == nil; i++ {
		r := &reqs[i]
		g := d.take(maxStringLen)
		for _, name := range gateways[:known] {
			if string(g) == name {
				r.Gateway = name
				break
			}
		}
		if r.Gateway == "" && len(g) > 0 {
			r.Gateway = string(g)
			if known < len(gateways) {
				gateways[known] = r.Gateway
				known++
			}
		}
		r.Client, r.Timestamp, r.Op, r.Auth = d.string(), d.uvarint(), d.bytes(), d.bytes()
		b = append(b, r)
	}
	return b
}

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
