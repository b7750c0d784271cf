package gateway

import (
	"crypto/sha256"
	"sync"
)

// requestIDs gives each (client, msg_id) of a stdio session the PBFT timestamp its
// request carries: 1, 2, 3, ... per client in the order msg_ids first appear, the same
// one again for a retransmission. docs/protocol.md lets msg_ids come in any order (and be
// negative); PBFT's at-most-once execution with a bounded reply cache needs timestamps
// that grow. A stdio session is the only client of its embedded cluster, so its own
// numbering cannot collide with another gateway's (against external replicas it is not
// used: msg_id is the timestamp, as over HTTP). It also remembers how each request
// was answered, so that a retransmission older than the replicas' reply cache is still
// answered with the same sequence number instead of being refused.
type requestIDs struct {
	mu      sync.Mutex
	clients map[string]*clientIDs
}

type clientIDs struct {
	last  uint64
	byMsg map[int64]*requestID
}

// requestID is one request of the session.
type requestID struct {
	ts       uint64
	op       [sha256.Size]byte // the operation's digest: a retransmission must repeat it
	mu       sync.Mutex
	assigned *Assignment
	executed *ExecuteResult
}

// maxRememberedResult bounds the result of a request kept for its retransmissions.
const maxRememberedResult = 1 << 10

func newRequestIDs() *requestIDs { return &requestIDs{clients: map[string]*clientIDs{}} }

// stamp sets a.Timestamp for (a.Client, msgID) and returns the request's record; with no
// requestIDs (the HTTP API, where several gateways may serve one client and msg_id is the
// timestamp) it changes nothing and returns nil. A msg_id used before with another
// operation is refused here (error 22), before anything is sent to the replicas.
func (ids *requestIDs) stamp(a *RequestArgs, msgID int64) (*requestID, error) {
	id, _, err := ids.stampIf(a, msgID, false)
	return id, err
}

// stampIf is stamp; with onlyNew, a (client, msg_id) seen before is left as it is and
// reported as not new.
func (ids *requestIDs) stampIf(a *RequestArgs, msgID int64, onlyNew bool) (id *requestID, isNew bool, err error) {
	if ids == nil {
		return nil, false, nil
	}
	ids.mu.Lock()
	defer ids.mu.Unlock()
	c := ids.clientLocked(a.Client)
	id = c.byMsg[msgID]
	if id != nil && onlyNew {
		return nil, false, nil
	}
	op := sha256.Sum256([]byte(a.Operation))
	if id == nil {
		c.last++
		id = &requestID{ts: c.last, op: op}
		c.byMsg[msgID] = id
		isNew = true
	} else if id.op != op {
		pe := protoErr(CodePreconditionFail,
			"client %s used msg_id %d before with another operation: a retransmission must repeat its request; nothing was ordered or executed; send a new msg_id",
			a.Client, msgID)
		pe.conflict = true
		return nil, false, pe
	}
	a.Timestamp = id.ts
	return id, isNew, nil
}

// clientLocked returns client's entry, made on first use (ids.mu held).
func (ids *requestIDs) clientLocked(client string) *clientIDs {
	if ids.clients == nil {
		ids.clients = map[string]*clientIDs{}
	}
	c := ids.clients[client]
	if c == nil {
		c = &clientIDs{byMsg: map[int64]*requestID{}}
		ids.clients[client] = c
	}
	return c
}

// fresh gives a a new timestamp of its client without recording msgID: a read is never
// ordered unless its read-only path fails, changes nothing, and so does not take a
// (client, msg_id) that a request could conflict with (nil ids: msg_id is the timestamp).
func (ids *requestIDs) fresh(a *RequestArgs, msgID int64) error {
	if ids == nil {
		if msgID < 1 {
			return errTimestamp
		}
		a.Timestamp = uint64(msgID)
		return nil
	}
	ids.mu.Lock()
	defer ids.mu.Unlock()
	c := ids.clientLocked(a.Client)
	c.last++
	a.Timestamp = c.last
	return nil
}

// stampNew is stamp for a (client, msg_id) not seen before in the session; for one seen
// before (a retransmission, or a reuse with another operation) it changes nothing and
// reports false: the ordinary path answers those.
func (ids *requestIDs) stampNew(a *RequestArgs, msgID int64) (*requestID, bool) {
	id, isNew, _ := ids.stampIf(a, msgID, true)
	return id, isNew
}

func (id *requestID) noteAssigned(a Assignment) {
	if id == nil {
		return
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.assigned == nil {
		id.assigned = &a
	}
}

func (id *requestID) noteExecuted(r ExecuteResult) {
	if id == nil {
		return
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	// A large result is not kept: a session of many large reads would hold them all.
	// Its retransmission, once older than the replicas' cache, is refused instead.
	if id.executed == nil && len(r.Result) <= maxRememberedResult {
		id.executed = &r
	}
	if id.assigned == nil {
		id.assigned = &Assignment{Seq: r.Seq, View: r.View}
	}
}

// previous returns how the request was answered before, if it was.
func (id *requestID) previous() (*Assignment, *ExecuteResult) {
	if id == nil {
		return nil, nil
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.assigned, id.executed
}
