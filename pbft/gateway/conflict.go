package gateway

// A retransmission is the same request: a client's id (client, msg_id) used again with
// another operation is refused with error 22, and nothing is ordered or executed. The
// replicas decide it (they keep a digest of each executed operation with its reply), so
// the gateway believes it only from a quorum of matching ConflictResult replies, as any
// result (the PBFT client checks them: client.ErrConflict, client.ErrInFlight).

// conflictError is the answer to a request whose id was used with another operation.
func conflictError(client string, t, seq uint64) *ProtoError {
	pe := protoErr(CodePreconditionFail,
		"client %s used request id %d before with another operation (ordered at %d): a retransmission must repeat its request; nothing was ordered or executed; send a new msg_id",
		client, t, seq)
	pe.conflict = true
	return pe
}

// inFlightConflict refuses a request while this gateway waits for the replies to another
// operation under the same id: the replicas would refuse it too, and their replies to the
// two could not be told apart.
func inFlightConflict(a RequestArgs) *ProtoError {
	pe := protoErr(CodePreconditionFail,
		"client %s has request id %d in flight with another operation: a retransmission must repeat its request; this one is not ordered or executed; send a new msg_id",
		a.Client, a.Timestamp)
	pe.conflict = true
	return pe
}
