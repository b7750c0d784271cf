package pbft

import (
	"encoding/binary"
	"fmt"
	"slices"
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
	case *Transition:
		dst = appendLink(dst, &m.Link)
		dst = appendString(dst, m.Signer)
		dst = appendBytes(dst, m.Sig)
	case *Chain:
		dst = appendChain(dst, m)
	case *AskAdmission:
		dst = appendString(dst, m.Joiner)
		dst = appendUvarint(dst, uint64(len(m.Members)))
		for _, id := range m.Members {
			dst = appendString(dst, id)
		}
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
	case *Transition:
		return linkBytes(&m.Link)
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
