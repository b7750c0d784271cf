package pbft

import (
	"bytes"
	"errors"
	"fmt"
)

// Membership is one configuration: its number (init starts configuration 0) and its
// replicas' ids in rotation order (the primary of view v is Members[v mod n]).
type Membership struct {
	Conf    uint64
	Members []string
}

// Index returns the position of id in the membership, or -1.
func (m Membership) Index(id string) int {
	for i, x := range m.Members {
		if x == id {
			return i
		}
	}
	return -1
}

// ErrMembership reports a member list that is not a valid membership.
var ErrMembership = errors.New("pbft: invalid membership")

// ErrNoProgress reports a membership that could not make progress: fewer than its
// quorum of replicas would be live. A gateway refuses to reconfigure to it.
var ErrNoProgress = errors.New("pbft: the membership could not make progress")

// ValidateMembers checks a member list: at least one id, at most maxListLen, each
// non-empty, short enough to travel, and distinct.
func ValidateMembers(members []string) error {
	if len(members) == 0 || len(members) > maxListLen {
		return fmt.Errorf("%w: %d members", ErrMembership, len(members))
	}
	seen := make(map[string]bool, len(members))
	for _, id := range members {
		switch {
		case id == "" || len(id) > maxStringLen:
			return fmt.Errorf("%w: member id of %d bytes", ErrMembership, len(id))
		case seen[id]:
			return fmt.Errorf("%w: %q twice", ErrMembership, id)
		}
		seen[id] = true
	}
	return nil
}

// ReconfigPrefix begins the operation of a reconfiguration request. A request is a
// reconfiguration exactly when its operation starts with it: the request's authenticator
// and the batch digest cover the operation, so nobody can turn a client operation into a
// reconfiguration or back, and requests inside batches need no extra flag on the wire.
// It is not UTF-8, so no operation of the key-value store (a JSON string) begins with it.
// The application never sees such an operation.
const ReconfigPrefix = "\xfepbft reconfigure\n"

// reconfigOKPrefix begins the result of an executed reconfiguration; the new membership
// follows (EncodeMembership). A refused one gets a result that begins with
// ReconfigRefusedPrefix and changes nothing.
const reconfigOKPrefix = "\xfepbft reconfigured\n"

// ReconfigRefusedPrefix begins the result of a reconfiguration that executed to an error
// (not the administrator, a stale configuration number, a malformed list): the same on
// every replica, and nothing changed.
const ReconfigRefusedPrefix = "\xffreconfiguration refused: "

// IsReconfig reports whether op is a reconfiguration operation.
func IsReconfig(op []byte) bool { return bytes.HasPrefix(op, []byte(ReconfigPrefix)) }

func isReconfigBatch(batch []*Request) bool {
	for _, req := range batch {
		if IsReconfig(req.Op) {
			return true
		}
	}
	return false
}

// EncodeMembership is the canonical encoding of a membership: its number, then its ids.
func EncodeMembership(m Membership) []byte {
	dst := appendUvarint(nil, m.Conf)
	dst = appendUvarint(dst, uint64(len(m.Members)))
	for _, id := range m.Members {
		dst = appendString(dst, id)
	}
	return dst
}

// DecodeMembership parses EncodeMembership and validates the list; it never panics.
func DecodeMembership(b []byte) (Membership, error) {
	d := decoder{buf: b}
	m := d.membership()
	if d.err == nil && len(d.buf) != 0 {
		d.fail("trailing bytes after membership")
	}
	if d.err != nil {
		return Membership{}, d.err
	}
	if err := ValidateMembers(m.Members); err != nil {
		return Membership{}, err
	}
	return m, nil
}

func (d *decoder) membership() Membership {
	m := Membership{Conf: d.uvarint()}
	for i, n := 0, d.count(); i < n && d.err == nil; i++ {
		m.Members = append(m.Members, d.string())
	}
	return m
}

// ReconfigOp is the operation of a reconfiguration request: end configuration ends
// (its number and members: a request that does not name the configuration in force
// executes to a refusal) and run next from then on. Naming the old members lets a
// joiner, which is told only the membership it joins, learn from the administrator
// whose certificate the state it fetches needs (admit.go).
func ReconfigOp(ends Membership, next []string) []byte {
	op := append([]byte(ReconfigPrefix), EncodeMembership(Membership{Conf: ends.Conf, Members: next})...)
	op = appendUvarint(op, uint64(len(ends.Members)))
	for _, id := range ends.Members {
		op = appendString(op, id)
	}
	return op
}

// DecodeReconfigOp parses ReconfigOp: the new member list, with the number of the
// configuration the request ends.
func DecodeReconfigOp(op []byte) (Membership, error) {
	_, next, err := DecodeReconfigChange(op)
	return next, err
}

// DecodeReconfigChange parses ReconfigOp whole: the configuration it ends and the new
// member list (with the ended configuration's number, as DecodeReconfigOp). It
// validates both lists and never panics.
func DecodeReconfigChange(op []byte) (ends, next Membership, err error) {
	if !IsReconfig(op) {
		return Membership{}, Membership{}, fmt.Errorf("%w: not a reconfiguration", ErrDecode)
	}
	d := decoder{buf: op[len(ReconfigPrefix):]}
	next = d.membership()
	ends.Conf = next.Conf
	for i, n := 0, d.count(); i < n && d.err == nil; i++ {
		ends.Members = append(ends.Members, d.string())
	}
	if d.err == nil && len(d.buf) != 0 {
		d.fail("trailing bytes after reconfiguration")
	}
	if d.err != nil {
		return Membership{}, Membership{}, d.err
	}
	if err := ValidateMembers(next.Members); err != nil {
		return Membership{}, Membership{}, err
	}
	if err := ValidateMembers(ends.Members); err != nil {
		return Membership{}, Membership{}, fmt.Errorf("the configuration it ends: %w", err)
	}
	return ends, next, nil
}

// DecodeReconfigResult parses the result of a reconfiguration reply: the configuration
// that now runs and its members; ok is false for a refusal or any other result.
func DecodeReconfigResult(result []byte) (m Membership, ok bool) {
	if !bytes.HasPrefix(result, []byte(reconfigOKPrefix)) {
		return Membership{}, false
	}
	m, err := DecodeMembership(result[len(reconfigOKPrefix):])
	return m, err == nil
}

func reconfigOKResult(m Membership) []byte {
	return append([]byte(reconfigOKPrefix), EncodeMembership(m)...)
}

// configState is the configuration part of the replicated state: the membership in force
// and, between the execution of a reconfiguration at Seq and the stable checkpoint at
// Seq, the one that follows. It is in every snapshot, so the digest of a checkpoint
// covers it and a replica installed by state transfer (or restarted from its log) is in
// the right membership.
type configState struct {
	cur     Membership
	next    *Membership
	nextSeq uint64 // the reconfiguration's sequence number, when next != nil
	// legacy marks a snapshot without a configuration (decoding only).
	legacy bool
}

func appendConfigState(dst []byte, c configState) []byte {
	dst = append(dst, EncodeMembership(c.cur)...)
	if c.next == nil {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	dst = appendUvarint(dst, c.nextSeq)
	return append(dst, EncodeMembership(*c.next)...)
}

func (d *decoder) configState() configState {
	if d.err == nil && len(d.buf) == 0 {
		// A snapshot written before configurations were replicated (a durable log of an
		// older version): the replica keeps the configuration it was started with.
		return configState{legacy: true}
	}
	c := configState{cur: d.membership()}
	if d.err != nil || len(d.buf) == 0 {
		d.fail("short configuration")
		return c
	}
	flag := d.buf[0]
	d.buf = d.buf[1:]
	switch flag {
	case 0:
	case 1:
		c.nextSeq = d.uvarint()
		n := d.membership()
		c.next = &n
		if d.err == nil {
			if err := ValidateMembers(n.Members); err != nil || n.Conf != c.cur.Conf+1 {
				d.fail("bad next configuration")
			}
		}
	default:
		d.fail("bad configuration flag")
	}
	return c
}
