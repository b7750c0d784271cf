package pbft

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// Digest identifies a batch of requests (SHA-256 of its canonical encoding).
type Digest [32]byte

// String shows the first bytes, enough to tell digests apart in logs and traces.
func (d Digest) String() string { return hex.EncodeToString(d[:4]) }

// Kind names a message type. Kinds double as the NATS subject token the bus uses.
type Kind uint8

// Message kinds. The numeric values are on the wire: never reorder them.
const (
	KindRequest Kind = iota + 1
	KindPrePrepare
	KindPrepare
	KindCommit
	KindReply
	KindCheckpoint
	KindViewChange
	KindNewView
	KindStatus
	KindFetch
	KindState
	KindFetchBatch
	KindBatch
	KindCommitted
	KindTransition
	KindChain
	KindAskAdmission
	kindEnd
)

var kindNames = [...]string{
	KindRequest:      "request",
	KindPrePrepare:   "preprepare",
	KindPrepare:      "prepare",
	KindCommit:       "commit",
	KindReply:        "reply",
	KindCheckpoint:   "checkpoint",
	KindViewChange:   "viewchange",
	KindNewView:      "newview",
	KindStatus:       "status",
	KindFetch:        "fetch",
	KindState:        "state",
	KindFetchBatch:   "fetchbatch",
	KindBatch:        "batch",
	KindCommitted:    "committed",
	KindTransition:   "transition",
	KindChain:        "chain",
	KindAskAdmission: "askadmission",
}

func (k Kind) String() string {
	if k == 0 || k >= kindEnd {
		return "unknown"
	}
	return kindNames[k]
}

// KindFromString is the inverse of Kind.String; ok is false for unknown names.
func KindFromString(s string) (Kind, bool) {
	for k := KindRequest; k < kindEnd; k++ {
		if kindNames[k] == s {
			return k, true
		}
	}
	return 0, false
}

// Message is any protocol message.
type Message interface {
	Kind() Kind
}

// Request is a client operation <REQUEST, o, t, c>. Client and Timestamp identify it for
// deduplication; Gateway is the authenticated principal that sent it and receives the
// replies. Auth is the sender's authenticator over the request, carried opaquely so that
// backups can check a request the primary relays; it is not part of the request's identity.
// ReadOnly marks a read-only request (readonly.go): executed at once, never ordered, so it
// never appears in a batch; the authenticator covers it (BatchDigest of the request alone).
type Request struct {
	Gateway   string
	Client    string
	Timestamp uint64
	Op        []byte
	Auth      []byte
	ReadOnly  bool
}

// PrePrepare assigns sequence number Seq in View to a batch. An empty batch is the null
// request a new primary uses to fill gaps.
type PrePrepare struct {
	View   uint64
	Seq    uint64
	Digest Digest
	Batch  []*Request
}

// Prepare is a backup's agreement to the pre-prepare (View, Seq, Digest).
type Prepare struct {
	View    uint64
	Seq     uint64
	Digest  Digest
	Replica int
}

// Commit says Replica has prepared (View, Seq, Digest).
type Commit struct {
	View    uint64
	Seq     uint64
	Digest  Digest
	Replica int
}

// Reply carries the result of an executed request back to its gateway. A reply to a
// read-only request has ReadOnly set, the replica's current view, and as Seq the last
// sequence number it had executed when it read.
type Reply struct {
	View      uint64
	Seq       uint64
	Client    string
	Timestamp uint64
	Replica   int
	Result    []byte
	ReadOnly  bool
	// Conf is the configuration of the replica that replied (membership.go): a client
	// counts a quorum among the members of one configuration.
	Conf uint64
}

// Checkpoint announces the state digest after executing Seq.
type Checkpoint struct {
	Seq     uint64
	State   Digest
	Replica int
}

// StatusMsg is a replica's periodic summary, letting peers retransmit what it lacks
// (Castro's status messages).
type StatusMsg struct {
	View         uint64
	LowWater     uint64
	LastExecuted uint64
	Replica      int
}

// Fetch asks a peer for the application state at a stable checkpoint (state transfer),
// from byte Offset of its snapshot on.
type Fetch struct {
	Seq     uint64
	Offset  uint64
	Replica int
}

// State answers a Fetch with a piece of a snapshot: Snapshot holds its bytes from Offset
// on, of Total in all. A state can be far larger than one bus message, so it travels in
// pieces; the receiver checks the whole against the digest that 2f+1 checkpoints
// certified. A durable log keeps a whole snapshot in one State (Offset 0, Total its size).
type State struct {
	Seq      uint64
	Offset   uint64
	Total    uint64
	Snapshot []byte
	Replica  int
}

// FetchBatch asks a peer for the batch with Digest that it prepared at Seq: a new
// primary re-proposing a batch that the view-changes named only by its digest (a
// view-change leaves batches out past ViewChangeBatchBytes) and that it never received.
type FetchBatch struct {
	Seq     uint64
	Digest  Digest
	Replica int
}

// BatchMsg answers a FetchBatch; the receiver checks Batch against Digest.
type BatchMsg struct {
	Seq     uint64
	Digest  Digest
	Batch   []*Request
	Replica int
}

// Committed is a peer's answer to a replica behind it (catchup.go), for one number the
// peer executed: the peer's own commit (View, Seq, Digest, Replica) and the batch with that
// digest. The receiver checks Batch against Digest and executes Seq once it holds a quorum
// of members' matching commits of one view: the batch committed, whoever pre-prepared it.
type Committed struct {
	View    uint64
	Seq     uint64
	Digest  Digest
	Batch   []*Request
	Replica int
}

func (*FetchBatch) Kind() Kind { return KindFetchBatch }
func (*BatchMsg) Kind() Kind   { return KindBatch }
func (*Committed) Kind() Kind  { return KindCommitted }

func (*Request) Kind() Kind    { return KindRequest }
func (*PrePrepare) Kind() Kind { return KindPrePrepare }
func (*Prepare) Kind() Kind    { return KindPrepare }
func (*Commit) Kind() Kind     { return KindCommit }
func (*Reply) Kind() Kind      { return KindReply }
func (*Checkpoint) Kind() Kind { return KindCheckpoint }
func (*StatusMsg) Kind() Kind  { return KindStatus }
func (*Fetch) Kind() Kind      { return KindFetch }
func (*State) Kind() Kind      { return KindState }

// BatchDigest is the digest a pre-prepare must carry for batch: it covers each request's
// identity and operation, not its authenticator. A request's authenticator covers the
// digest of it alone; for a read-only request (never in a batch) that digest covers the
// flag too (readonly.go).
func BatchDigest(batch []*Request) Digest {
	if len(batch) == 1 && batch[0].ReadOnly {
		return readOnlyDigest(batch[0])
	}
	// The encoding is built on the stack and hashed at once; only a batch past a few KiB
	// streams through a hasher, in copies (a slice handed to Write escapes, and would
	// take the stack buffer to the heap on every call).
	var small [2048]byte
	buf := appendUvarint(small[:0], uint64(len(batch)))
	var h hash.Hash
	var chunk []byte
	for _, r := range batch {
		buf = appendDigested(buf, r)
		if len(buf) > 4096 {
			if h == nil {
				h = sha256.New()
			}
			chunk = append(chunk[:0], buf...)
			h.Write(chunk)
			buf = buf[:0]
		}
	}
	if h == nil {
		return sha256.Sum256(buf)
	}
	chunk = append(chunk[:0], buf...)
	h.Write(chunk)
	var d Digest
	h.Sum(d[:0])
	return d
}

// appendDigested appends what a batch's digest covers of request r.
func appendDigested(buf []byte, r *Request) []byte {
	buf = appendString(buf, r.Gateway)
	buf = appendString(buf, r.Client)
	buf = appendUvarint(buf, r.Timestamp)
	return appendBytes(buf, r.Op)
}

// CheckpointClaim is a (sequence number, state digest) pair a replica vouches for.
type CheckpointClaim struct {
	Seq   uint64
	State Digest
}

// Prepared is an entry of a view-change's P set: the batch that prepared at Seq in the
// highest view the sender saw it prepare. The batch travels with it so that the new primary
// can re-propose it; receivers check it against Digest.
type Prepared struct {
	Seq    uint64
	View   uint64
	Digest Digest
	Batch  []*Request
}

// PrePrepared is an entry of a view-change's Q set: for one digest at Seq, the highest view
// in which the sender accepted a pre-prepare for it (Castro & Liskov, TOCS §4.5).
type PrePrepared struct {
	Seq    uint64
	View   uint64
	Digest Digest
}

// ViewChange is <VIEW-CHANGE, v+1, h, C, P, Q, i>. It is signed (Sig) because the new
// primary forwards it inside NEW-VIEW as evidence; Sig is not part of the signed bytes.
type ViewChange struct {
	NewView     uint64
	Replica     int
	LowWater    uint64
	Checkpoints []CheckpointClaim
	P           []Prepared
	Q           []PrePrepared
	Sig         []byte
}

// NewView is <NEW-VIEW, v+1, V, X>: the view-change messages the primary decided from and
// the pre-prepares of the new view it derived from them (re-issued batches and null
// requests). Backups re-run the decision on ViewChanges and accept only an exact match.
type NewView struct {
	View        uint64
	Replica     int
	ViewChanges []*ViewChange
	PrePrepares []*PrePrepare
	Sig         []byte
}

func (*ViewChange) Kind() Kind { return KindViewChange }
func (*NewView) Kind() Kind    { return KindNewView }
