package pbft

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// The client side of the wire: what gateways and replicas both need beside the protocol's
// own messages, so that a client never imports the replica driver (package node).

// RequestDigest is what a client's request authenticator covers (r.Digest as a slice).
func RequestDigest(r *Request) []byte {
	d := r.Digest()
	return d[:]
}

// Digest is what the request's authenticator covers: the digest of a batch of r alone
// (BatchDigest), computed on a small stack buffer. Every request's is computed once by
// its client and once by each replica that checks its tag, and BatchDigest's buffer,
// sized for a batch, cost more to clear than a small request costs to hash.
func (r *Request) Digest() Digest {
	if r.ReadOnly {
		return readOnlyDigest(r)
	}
	var stack [256]byte // a request's fields usually fit: no allocation
	return sha256.Sum256(appendDigested(appendUvarint(stack[:0], 1), r))
}

// Bus kinds of the client side of a replica, beside the protocol's own kinds.
const (
	// KindQuery carries a Query from a gateway to one replica.
	KindQuery = "query"
	// KindAnswer carries an Answer back.
	KindAnswer = "answer"
	// KindReplies carries several replies of one replica to one gateway in one bus
	// message: the replies of a batch to the gateway that sent its requests. A reply is
	// small and a batch may hold hundreds, so one envelope (one MAC, one NATS message) per
	// batch instead of one per request is most of what a replica sends at high load.
	KindReplies = "replies"
)

// Query operations.
const (
	// OpSubmit steps Request into the replica (a backup forwards it to the primary) and
	// answers once the replica has accepted a pre-prepare that orders it.
	OpSubmit = "submit"
	// OpStatus answers the replica's status of Seq once the wait condition holds.
	OpStatus = "status"
	// OpInfo answers the replica's view, progress and fault once the wait condition holds.
	OpInfo = "info"
)

// ErrStale is the Answer.Error of a submit whose request id is older than the replicas'
// reply cache for that client remembers: it is refused, never executed twice.
const ErrStale = "stale request id"

// Query is what a gateway asks one replica. Every wait is bounded by WaitMillis: when it
// passes, the replica answers with what it has.
type Query struct {
	ID   uint64 `json:"id"`
	Op   string `json:"op"`
	Seq  uint64 `json:"seq,omitempty"`
	Wait *Wait  `json:"wait,omitempty"`
	// Request is a Request in its wire encoding (OpSubmit).
	Request    []byte `json:"request,omitempty"`
	WaitMillis int    `json:"wait_ms,omitempty"`
	// Digest asks an OpInfo answer for the digest of the replicated state (it costs a
	// snapshot of the whole state, so only tools that compare replicas ask).
	Digest bool `json:"digest,omitempty"`
}

// Wait is the condition an OpStatus or OpInfo answer waits for, which makes what it
// reports deterministic: the replica has executed everything up to MinExecuted, and (for
// OpStatus, when Seq <= MinExecuted) has logged a matching commit for Seq from each of
// CommitsFrom.
type Wait struct {
	MinExecuted uint64   `json:"min_executed,omitempty"`
	CommitsFrom []string `json:"commits_from,omitempty"`
	// MinConfiguration waits until the replica is a member of that configuration or a
	// later one (it installed a reconfiguration).
	MinConfiguration uint64 `json:"min_configuration,omitempty"`
}

// Answer is a replica's answer to a Query.
type Answer struct {
	ID      uint64 `json:"id"`
	Replica string `json:"replica"`
	// TimedOut is set when the wait condition did not hold within the wait.
	TimedOut bool `json:"timed_out,omitempty"`
	// OpSubmit
	Seq     uint64 `json:"seq,omitempty"`
	Ordered bool   `json:"ordered,omitempty"`
	// Conflict: Seq orders this request's id with another operation (the gateway
	// believes it once f+1 replicas reply ConflictResult).
	Conflict bool `json:"conflict,omitempty"`
	// OpStatus
	Phase    string `json:"phase,omitempty"`
	Prepares int    `json:"prepares,omitempty"`
	Commits  int    `json:"commits,omitempty"`
	Executed bool   `json:"executed,omitempty"`
	// OpSubmit, OpInfo
	View uint64 `json:"view"`
	// OpInfo
	Primary          string `json:"primary,omitempty"`
	ViewActive       bool   `json:"view_active,omitempty"`
	LastExecuted     uint64 `json:"last_executed"`
	StableCheckpoint uint64 `json:"stable_checkpoint"`
	ViewChanges      uint64 `json:"view_changes,omitempty"`
	Fault            string `json:"fault,omitempty"`
	// Configuration and Members are the replica's configuration (OpInfo); NotMember is
	// set on a replica that left it or has not joined yet.
	Configuration uint64   `json:"configuration,omitempty"`
	Members       []string `json:"members,omitempty"`
	NotMember     bool     `json:"not_member,omitempty"`
	// StateDigest is the hex digest of the replicated state at LastExecuted (Query.Digest).
	StateDigest string `json:"state_digest,omitempty"`
	Error       string `json:"error,omitempty"`
}

// EncodeQuery and the functions below are the wire form of queries and answers. They are
// off the protocol's hot path, so JSON keeps them easy to read on the bus.
func EncodeQuery(q *Query) []byte { b, _ := json.Marshal(q); return b }

// DecodeQuery parses a Query.
func DecodeQuery(b []byte) (*Query, error) {
	var q Query
	if err := json.Unmarshal(b, &q); err != nil {
		return nil, fmt.Errorf("node: bad query: %w", err)
	}
	return &q, nil
}

// EncodeAnswer encodes an Answer.
func EncodeAnswer(a *Answer) []byte { b, _ := json.Marshal(a); return b }

// DecodeAnswer parses an Answer.
func DecodeAnswer(b []byte) (*Answer, error) {
	var a Answer
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("node: bad answer: %w", err)
	}
	return &a, nil
}

// maxRepliesPerMessage bounds what DecodeReplies accepts.
const maxRepliesPerMessage = 1 << 16

// EncodeReplies packs replies as a count, then each reply's wire encoding with its length.
func EncodeReplies(replies []*Reply) []byte { return AppendReplies(nil, replies) }

// AppendReplies appends EncodeReplies' encoding of replies to b: a sender reusing its
// buffer allocates nothing.
func AppendReplies(b []byte, replies []*Reply) []byte {
	b = binary.AppendUvarint(b, uint64(len(replies)))
	for _, r := range replies {
		// Encode in place, then slide it to make room for its length in front.
		start := len(b)
		b = AppendMessage(b, r)
		n := len(b) - start
		var prefix [binary.MaxVarintLen64]byte
		k := binary.PutUvarint(prefix[:], uint64(n))
		b = append(b, prefix[:k]...)
		copy(b[start+k:], b[start:start+n])
		copy(b[start:], prefix[:k])
	}
	return b
}

// DecodeReplies unpacks EncodeReplies.
func DecodeReplies(b []byte) ([]*Reply, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > maxRepliesPerMessage {
		return nil, errors.New("node: bad replies count")
	}
	b = b[k:]
	// Each reply takes at least 2 bytes: a count larger than that is a lie, found before
	// it sizes an allocation.
	if n > uint64(len(b))/2 {
		return nil, errors.New("node: replies count exceeds the message")
	}
	// One allocation for the replies: they arrive, are counted and are dropped together.
	out := make([]*Reply, 0, n)
	slab := make([]Reply, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, fmt.Errorf("node: reply %d cut short", i)
		}
		r := &slab[i]
		if err := decodeReply(b[k:k+int(l)], r); err != nil {
			return nil, err
		}
		out = append(out, r)
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, errors.New("node: trailing bytes after replies")
	}
	return out, nil
}

// Fault is a built-in behaviour of a replica, for tests and demonstrations; gateways
// switch it, so its names are part of the client side.
type Fault string

// The behaviours PROTOCOL.md names.
const (
	FaultNone       Fault = "none"       // honest
	FaultCrash      Fault = "crash"      // neither receives nor sends protocol messages
	FaultSilent     Fault = "silent"     // receives, sends nothing
	FaultEquivocate Fault = "equivocate" // conflicting pre-prepares as primary, wrong digests in votes
)

// ErrUnknownFault reports a behaviour name that is none of the Fault constants.
var ErrUnknownFault = errors.New("unknown fault")

// ParseFault checks a behaviour name; the empty name is FaultNone.
func ParseFault(s string) (Fault, error) {
	switch f := Fault(s); f {
	case FaultNone, FaultCrash, FaultSilent, FaultEquivocate:
		return f, nil
	case "":
		return FaultNone, nil
	}
	return "", fmt.Errorf("%w %q", ErrUnknownFault, s)
}
