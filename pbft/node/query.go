package node

import "github.com/pbft-nats/pbft/pbft"

// The query wire form is shared with clients, so it lives in package pbft (clientwire.go);
// these names keep the driver's spelling of it.

// Bus kinds of the client side of a replica, beside the protocol's own kinds.
const (
	KindQuery  = pbft.KindQuery
	KindAnswer = pbft.KindAnswer
)

// Query operations.
const (
	OpSubmit = pbft.OpSubmit
	OpStatus = pbft.OpStatus
	OpInfo   = pbft.OpInfo
)

// ErrStale is the Answer.Error of a submit older than the replicas' reply cache.
const ErrStale = pbft.ErrStale

type (
	// Query is what a gateway asks one replica.
	Query = pbft.Query
	// Wait is the condition an OpStatus or OpInfo answer waits for.
	Wait = pbft.Wait
	// Answer is a replica's answer to a Query.
	Answer = pbft.Answer
)

// EncodeQuery encodes a Query.
func EncodeQuery(q *Query) []byte { return pbft.EncodeQuery(q) }

// DecodeQuery parses a Query.
func DecodeQuery(b []byte) (*Query, error) { return pbft.DecodeQuery(b) }

// EncodeAnswer encodes an Answer.
func EncodeAnswer(a *Answer) []byte { return pbft.EncodeAnswer(a) }

// DecodeAnswer parses an Answer.
func DecodeAnswer(b []byte) (*Answer, error) { return pbft.DecodeAnswer(b) }
