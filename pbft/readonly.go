package pbft

import (
	"crypto/sha256"
	"fmt"
)

// Read-only requests: PBFT's read-only optimisation (Castro & Liskov, TOCS 2002, §5.1.3).
// A client sends a read-only request to every replica; each executes it at once on its
// current state, without ordering it, and replies with Reply.ReadOnly set. The client
// accepts a result at q = Quorum.Commit() matching replies (AcceptReplies) and otherwise
// sends the operation again as an ordered request. Such reads are linearizable only if
// every client accepts every write at q matching replies too: a write acknowledged by q
// replicas and a read answered by q replicas share at least 2q-n >= f+1 of them, so at
// least one correct replica that executed the write answers the read, and no q replies
// can agree on the old value.

// ReadOnlyClassifier is implemented by applications that serve read-only requests. An
// application without it refuses them all.
type ReadOnlyClassifier interface {
	// IsReadOnly reports whether op never changes the state. The replica then executes
	// it with Execute outside the order, so Execute of such an op must leave the state
	// (and so Snapshot) exactly as it was.
	IsReadOnly(op []byte) bool
}

// NotReadOnlyResult is the result of a read-only reply refusing the request: the
// application does not class its operation as read-only, so it was not executed. Like
// ConflictResult it is not UTF-8, so no result of the key-value store equals it.
const NotReadOnlyResult = "\xffnot read-only: the application does not class this operation as read-only"

// ErrNotReadOnly reports a read-only request whose operation is not read-only; the
// replica answers it with NotReadOnlyResult and counts it as rejected.
var ErrNotReadOnly = fmt.Errorf("%w: operation is not read-only", ErrRejected)

// readOnlyDomain starts the digest input of a read-only request. It starts with the byte
// 0, the count of an empty batch, whose encoding is that byte alone: so no batch, and in
// particular no ordered request alone (whose digest its authenticator covers), has the
// same digest input. Flipping the flag changes the digest, so neither a primary nor the
// network can turn an authenticated write into an unordered read, or a read into a write.
const readOnlyDomain = "\x00pbft read-only request"

// readOnlyDigest is BatchDigest of a read-only request alone: what its authenticator covers.
func readOnlyDigest(r *Request) Digest {
	var stack [256]byte // a read's fields usually fit: no allocation
	buf := append(stack[:0], readOnlyDomain...)
	buf = appendString(buf, r.Gateway)
	buf = appendString(buf, r.Client)
	buf = appendUvarint(buf, r.Timestamp)
	buf = appendBytes(buf, r.Op)
	return sha256.Sum256(buf)
}

// stepReadOnly answers a read-only request from the current executed state. It never
// touches the client table, the queue or the log, and it starts no timer: nothing about
// it is replicated, so a replica may answer it in any view, even while changing view.
func (r *Replica) stepReadOnly(from int, m *Request) error {
	if from != FromClient {
		return fmt.Errorf("%w: read-only request relayed by replica %d", ErrRejected, from)
	}
	k := keyOf(m)
	ro, ok := r.app.(ReadOnlyClassifier)
	if !ok || !ro.IsReadOnly(m.Op) {
		r.sendReadOnlyReply(m.Gateway, k, []byte(NotReadOnlyResult))
		return ErrNotReadOnly
	}
	r.sendReadOnlyReply(m.Gateway, k, r.app.Execute(m.Op))
	return nil
}

// sendReadOnlyReply replies with the replica's current view and the last sequence number
// it executed: the state the result was read from.
func (r *Replica) sendReadOnlyReply(gateway string, k reqKey, result []byte) {
	r.out = append(r.out, Outbound{To: ToGateway, Gateway: gateway, Msg: &Reply{
		View: r.view, Seq: r.lastExec, Client: k.client, Timestamp: k.t, Replica: r.id, Result: result,
		ReadOnly: true, Conf: r.conf.cur.Conf,
	}})
}

// AcceptReplies is a client's acceptance rule: the result that at least need replies
// from distinct replicas agree on. Only each replica's latest reply counts (a faulty one
// may send several), and only replies whose ReadOnly flag is readOnly (an ordered reply
// never counts towards a read-only answer, nor the reverse). Results are compared as
// bytes; views and sequence numbers may differ between replicas that read the same
// value. For reads and writes alike need is Quorum.Commit() (see the package's
// read-only notes above); the replies carried are the agreeing ones.
func AcceptReplies(replies []*Reply, readOnly bool, need int) (result []byte, agreeing int, ok bool) {
	latest := make(map[int]*Reply, len(replies))
	for _, rep := range replies {
		if rep != nil && rep.ReadOnly == readOnly {
			latest[rep.Replica] = rep
		}
	}
	counts := make(map[string]int, len(latest))
	best := ""
	for _, rep := range latest {
		s := string(rep.Result)
		counts[s]++
		if c := counts[s]; c > agreeing || (c == agreeing && s < best) {
			best, agreeing = s, c
		}
	}
	if agreeing < need || need < 1 {
		return nil, agreeing, false
	}
	return []byte(best), agreeing, true
}
