package gateway

import (
	"bytes"
	"context"
	"time"

	"github.com/pbft-nats/pbft/pbft"
)

// A retransmission is the same request: a client's id (client, msg_id) used again with
// another operation is refused with error 22, and nothing is ordered or executed. The
// replicas decide it (they keep a digest of each executed operation with its reply), so
// the gateway believes it only from f+1 matching ConflictResult replies, as any result.

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

// isConflict reports a result f+1 replicas agree is ConflictResult.
func isConflict(best Result, quorum int) bool {
	return best.Replies >= quorum && bytes.Equal(best.Value, []byte(pbft.ConflictResult))
}

// confirmConflict follows a replica's claim that req's id was ordered with another
// operation: it sends req to every replica and waits for f+1 matching replies. Matching
// conflicts refuse it; anything else (the claim was false: a faulty replica) is where the
// request was ordered.
func (s *Service) confirmConflict(ctx context.Context, req *pbft.Request) (Assignment, error) {
	c := s.backend.Client()
	set, ok := c.Watch(req.Client, req.Timestamp, req.Op)
	if !ok {
		return Assignment{}, inFlightConflict(RequestArgs{Client: req.Client, Timestamp: req.Timestamp})
	}
	defer c.Unwatch(req.Client, req.Timestamp)
	_ = c.Broadcast(req)
	retransmit := time.NewTicker(s.retransmitDelay())
	defer retransmit.Stop()
	for {
		changed := set.Changed()
		if best, ok := set.Agreed(s.q.Weak()); ok {
			if isConflict(best, s.q.Weak()) {
				return Assignment{}, conflictError(req.Client, req.Timestamp, best.Seq)
			}
			s.noteAssigned(best.Seq, best.View)
			return Assignment{Seq: best.Seq, View: best.View}, nil
		}
		select {
		case <-changed:
		case <-retransmit.C:
			_ = c.Broadcast(req)
		case <-ctx.Done():
			return Assignment{}, protoErr(CodeTimeout,
				"replica said request %d of client %s conflicts with another operation, but f+1 replicas did not confirm it within %v",
				req.Timestamp, req.Client, s.settings.RequestTimeout)
		}
	}
}
