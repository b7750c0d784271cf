package gateway

import (
	"context"
	"slices"

	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
	"github.com/pbft-nats/pbft/pbft/gateway/settle"
	"github.com/pbft-nats/pbft/pbft/kv"
)

// ReadResult is the outcome of pbft_read.
type ReadResult struct {
	Result  string
	Replies int
	// Seq is the sequence number of the ordered request, or on the read-only path the
	// highest number the agreeing replicas had executed when they read.
	Seq uint64
	// Ordered is set when the read-only path did not agree and an ordered request gave
	// the result.
	Ordered bool
	// Absent: the key is not set (Result is then "").
	Absent bool
}

// ParseRead validates the body of pbft_read: a pbft_execute's, whose operation the
// key-value store classes as read-only.
func ParseRead(l *jsonl.Line, msgID int64) (RequestArgs, error) {
	a, err := ParseRequest(l, msgID)
	if err != nil {
		return a, err
	}
	if !kv.New().IsReadOnly([]byte(a.Operation)) {
		return a, errNotReadOnly(a.Operation)
	}
	return a, nil
}

func errNotReadOnly(op string) *ProtoError {
	return protoErr(CodeMalformed, "%q is not a read-only operation (only get is): send it as pbft_execute", op)
}

// Read answers a read: through the read-only path (client.ReadOnly), every replica
// executing it at once on its state and q matching replies deciding; when they do not
// match, or when ordered is set, through an ordered request (Execute). The settle policy
// says whose replies the read-only path waits for, so that Replies is deterministic.
func (s *Service) Read(ctx context.Context, dest string, a RequestArgs, ordered bool) (ReadResult, error) {
	if !kv.New().IsReadOnly([]byte(a.Operation)) {
		return ReadResult{}, errNotReadOnly(a.Operation)
	}
	if !ordered {
		res, ok, err := s.readOnly(ctx, s.backend.Plan(), a)
		if err != nil || ok {
			return res, err
		}
	}
	if a.Restamp != nil {
		a.Timestamp = a.Restamp()
	}
	ex, err := s.Execute(ctx, dest, a)
	if err != nil {
		return ReadResult{}, err
	}
	return ReadResult{Result: ex.Result, Replies: ex.Replies, Seq: ex.Seq, Ordered: true, Absent: ex.Absent}, nil
}

// readOnly runs the read-only path; ok is false when q replies did not match.
func (s *Service) readOnly(ctx context.Context, p settle.Plan, a RequestArgs) (ReadResult, bool, error) {
	c := s.backend.Client()
	set, ok := c.Watch(a.Client, a.Timestamp, []byte(a.Operation))
	if !ok {
		return ReadResult{}, false, inFlightConflict(a)
	}
	defer c.Unwatch(a.Client, a.Timestamp)
	wait := s.settings.RequestTimeout
	if p.NoQuorum > 0 {
		wait = min(wait, p.NoQuorum)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	best, agreed, err := c.ReadOnly(ctx, a.request(""), set, s.readSettle(p))
	if err != nil {
		return ReadResult{}, false, s.requestError(err, a)
	}
	if _, q := s.members(); client.IsNotReadOnly(best, q) {
		return ReadResult{}, false, errNotReadOnly(a.Operation)
	}
	if !agreed {
		return ReadResult{}, false, nil
	}
	res := ReadResult{Result: string(best.Value), Replies: best.Replies, Seq: best.Seq}
	if res.Result == kv.Absent {
		res.Result, res.Absent = "", true
	}
	return res, true, nil
}

// readSettle is whose read-only replies a read waits for: with faults known, every live
// replica and every equivocating one (its votes are corrupted, its replies are not, and
// it answers a read at once, so waiting for it is deterministic where a grace would be a
// race); with faults not known, what an execution waits for.
func (s *Service) readSettle(p settle.Plan) client.Settle {
	if p.FaultsKnown {
		return client.Settle{Need: append(slices.Clone(p.Live), p.Replying...)}
	}
	return s.replySettle(p)
}
