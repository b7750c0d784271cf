package gateway

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// Reconfigurer is a backend that can change its membership: the embedded cluster, and
// external replicas when the gateway is their administrator (External).
type Reconfigurer interface {
	// Reconfigure orders req as the reconfiguration to next and returns its sequence
	// number and the membership now in force; an error wrapping pbft.ErrNoProgress
	// refuses a membership that could not make progress, changing nothing.
	Reconfigure(ctx context.Context, req client.Request, next []string) (uint64, pbft.Membership, error)
}

// ReconfigureResult is the outcome of pbft_reconfigure.
type ReconfigureResult struct {
	Seq           uint64
	Configuration uint64
	Primary       string
}

// Reconfigure serves pbft_reconfigure: only from the stdio input (reaching a network
// port must never be enough to change the membership), of the embedded cluster or of a
// gateway whose identity is the external replicas' administrator (error 10 otherwise).
func (s *Service) Reconfigure(ctx context.Context, l *jsonl.Line, msgID int64, ids *requestIDs, stdio bool) (ReconfigureResult, error) {
	next, ok, err := l.Strings("replicas")
	if err != nil || !ok {
		return ReconfigureResult{}, protoErr(CodeMalformed, "replicas must be a list of strings")
	}
	if err := pbft.ValidateMembers(next); err != nil {
		return ReconfigureResult{}, protoErr(CodeMalformed, "replicas must be distinct non-empty strings, at least one: %v", err)
	}
	rc, isRC := s.Backend().(Reconfigurer)
	if !isRC || !stdio {
		return ReconfigureResult{}, protoErr(CodeNotSupported, "pbft_reconfigure is served only on the stdio input")
	}
	name, _, err := l.String("client")
	if err != nil {
		return ReconfigureResult{}, protoErr(CodeMalformed, "client must be a string")
	}
	if name == "" {
		name = l.Src
	}
	args := RequestArgs{Operation: "reconfigure " + strings.Join(next, ","), Client: name}
	if ids == nil && msgID < 1 {
		return ReconfigureResult{}, errTimestamp // against external replicas msg_id is the timestamp
	} else if ids == nil {
		args.Timestamp = uint64(msgID)
	}
	id, err := ids.stamp(&args, msgID)
	if err != nil {
		return ReconfigureResult{}, err
	}
	if res, ok := answeredReconfigure(id); ok {
		return res, nil
	}
	if err := s.canOrderReconfigure(); err != nil {
		return ReconfigureResult{}, err
	}
	seq, m, err := rc.Reconfigure(ctx, client.Request{Client: args.Client, Timestamp: args.Timestamp}, next)
	switch {
	case errors.Is(err, ErrNotAdmin):
		return ReconfigureResult{}, protoErr(CodeNotSupported, "%v: only the administrator may reconfigure", err)
	case errors.Is(err, pbft.ErrNoProgress), errors.Is(err, client.ErrRefused):
		return ReconfigureResult{}, protoErr(CodePreconditionFail, "%v", err)
	case errors.Is(err, pbft.ErrMembership):
		return ReconfigureResult{}, protoErr(CodeMalformed, "%v", err)
	case errors.Is(err, bus.ErrInvalidToken):
		// Nothing was ordered: the joiner could not start. Ids travel in NATS subjects.
		return ReconfigureResult{}, protoErr(CodeMalformed, "%v: a replica id must be a NATS subject token (no '.', whitespace, '*' or '>')", err)
	case err != nil:
		return ReconfigureResult{}, asProtoError(err)
	}
	s.setMembers(m)
	storeMax(&s.maxSeq, seq)
	s.reconfSeq.Store(seq)
	id.noteExecuted(ExecuteResult{Seq: seq, Result: string(pbft.EncodeMembership(m))})
	return ReconfigureResult{Seq: seq, Configuration: m.Conf, Primary: m.Members[0]}, nil
}

// canOrderReconfigure refuses (error 22, changing nothing) a reconfiguration that the
// membership in force cannot order: with fewer than its quorum live, the request would
// time out after the joiners started, and execute later, unanswered, once a replica
// recovered.
func (s *Service) canOrderReconfigure() error {
	p := s.Backend().Plan()
	if !p.FaultsKnown {
		return nil
	}
	cur, q := s.members()
	live := 0
	for _, id := range cur {
		if slices.Contains(p.Live, id) {
			live++
		}
	}
	if live < q.Commit() {
		return protoErr(CodePreconditionFail,
			"the membership in force cannot order a reconfiguration: %d of its %d replicas are live, its quorum is %d", live, len(cur), q.Commit())
	}
	return nil
}

// answeredReconfigure is the answer already given to a reconfiguration's id, if it was
// answered: a retransmission (same client and msg_id, same list) is the same request,
// ordered once. Sent again, it would end the configuration now in force, another
// operation under the same id, which the replicas refuse.
func answeredReconfigure(id *requestID) (ReconfigureResult, bool) {
	_, prev := id.previous()
	if prev == nil {
		return ReconfigureResult{}, false
	}
	m, err := pbft.DecodeMembership([]byte(prev.Result))
	if err != nil || len(m.Members) == 0 {
		return ReconfigureResult{}, false
	}
	return ReconfigureResult{Seq: prev.Seq, Configuration: m.Conf, Primary: m.Members[0]}, true
}
