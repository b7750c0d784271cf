package node

import (
	"encoding/json"
	"fmt"
)

// Bus kinds of the client side of a replica, beside the protocol's own kinds.
const (
	// KindQuery carries a Query from a gateway to one replica.
	KindQuery = "query"
	// KindAnswer carries an Answer back.
	KindAnswer = "answer"
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
	// Request is a pbft.Request in its wire encoding (OpSubmit).
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
	// believes it once f+1 replicas reply pbft.ConflictResult).
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
