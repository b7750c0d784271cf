package gateway

import (
	"context"
	"time"

	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
	"github.com/pbft-nats/pbft/pbft/gateway/settle"
	"github.com/pbft-nats/pbft/pbft/kv"
)

// RequestArgs are the fields of pbft_request and pbft_execute.
type RequestArgs struct {
	Operation string
	Client    string
	Timestamp uint64
	// Restamp, when set, gives a read's ordered request a fresh timestamp. The key-value
	// facade stamps its own requests: while a read waited on the read-only path, newer
	// requests of the facade may have executed, and the replicas would refuse the
	// fallback as older than their reply cache.
	Restamp func() uint64
}

// ParseRequest validates the body of pbft_request or pbft_execute.
func ParseRequest(l *jsonl.Line, msgID int64) (RequestArgs, error) {
	op, ok, err := l.String("operation")
	if err != nil || !ok || op == "" {
		return RequestArgs{}, protoErr(CodeMalformed, "operation must be a non-empty string")
	}
	name, ok, err := l.String("client")
	if err != nil {
		return RequestArgs{}, protoErr(CodeMalformed, "client must be a string")
	}
	if !ok || name == "" {
		name = l.Src
	}
	if name == "" {
		return RequestArgs{}, protoErr(CodeMalformed, "no client: neither body.client nor src is set")
	}
	return RequestArgs{Operation: op, Client: name, Timestamp: uint64(msgID)}, nil
}

func (a RequestArgs) request(to string) client.Request {
	return client.Request{Client: a.Client, Timestamp: a.Timestamp, Op: []byte(a.Operation), To: to}
}

// requestOK is the answer to the pbft_request msgID ordered at asg.
func requestOK(msgID int64, asg Assignment) jsonl.Object {
	return jsonl.Object{{Key: "type", Value: "pbft_request_ok"}, {Key: "in_reply_to", Value: msgID},
		{Key: "sequence_number", Value: asg.Seq}, {Key: "view", Value: asg.View}, {Key: "phase", Value: "pre-prepare"}}
}

// Assignment is where the cluster ordered a request.
type Assignment = client.Assignment

// ExecuteResult is the outcome of pbft_execute.
type ExecuteResult struct {
	Seq, View uint64
	Result    string
	Replies   int
	// Absent is set when the result is a get of a key that is not set (Result is then
	// "", as the client protocol answers it; the HTTP API answers 404).
	Absent bool
}

// Submit hands a request to replica dest (or, if the gateway knows dest is faulty, to a
// live replica in its name) and waits until a pre-prepare orders it.
func (s *Service) Submit(ctx context.Context, dest string, a RequestArgs) (Assignment, error) {
	return s.submit(ctx, s.backend.Plan(), dest, a)
}

// submit is Submit under plan p.
func (s *Service) submit(ctx context.Context, p settle.Plan, dest string, a RequestArgs) (Assignment, error) {
	target := s.replica(dest)
	to := target
	if !p.IsLive(target) {
		to = s.pickLive(p)
	}
	// When it goes to another replica, the one it was meant for cannot pass it on: it goes
	// to every replica at once.
	asg, err := s.backend.Client().Submit(ctx, a.request(to), client.Route{Broadcast: to != target, Fallback: p.Live})
	if err != nil {
		return Assignment{}, s.requestError(err, a)
	}
	storeMax(&s.maxSeq, asg.Seq)
	return asg, nil
}

// pickLive chooses a live replica to carry a request: the primary of the latest view
// seen, if live, else the first live one.
func (s *Service) pickLive(p settle.Plan) string {
	if primary := s.backend.Client().Primary(); p.IsLive(primary) {
		return primary
	}
	if len(p.Live) > 0 {
		return p.Live[0]
	}
	ids, _ := s.members()
	return ids[0]
}

// Invoke is the PBFT client's own path (client.Invoke): the result at a quorum of
// matching replies, without asking where the request was ordered; the load tool uses it.
func (s *Service) Invoke(ctx context.Context, a RequestArgs) (ExecuteResult, error) {
	res, err := s.backend.Client().Invoke(ctx, a.request(s.pickLive(s.backend.Plan())))
	if err != nil {
		return ExecuteResult{}, s.requestError(err, a)
	}
	storeMax(&s.maxSeq, res.Seq)
	return executeResult(res, Assignment{}), nil
}

// Execute orders and executes a request and waits for its replies: a quorum of matching
// ones decides the result; the settle policy says whose further replies the answer waits for,
// so that Replies is deterministic.
func (s *Service) Execute(ctx context.Context, dest string, a RequestArgs) (ExecuteResult, error) {
	return s.executeOrdered(ctx, dest, a, nil)
}

// executeOrdered is Execute that also calls ordered (if not nil) as soon as the request
// is ordered or has failed to be.
func (s *Service) executeOrdered(ctx context.Context, dest string, a RequestArgs, ordered func()) (ExecuteResult, error) {
	p := s.backend.Plan()
	c := s.backend.Client()
	set, ok := c.Watch(a.Client, a.Timestamp, []byte(a.Operation))
	if !ok {
		if ordered != nil {
			ordered()
		}
		return ExecuteResult{}, inFlightConflict(a)
	}
	defer c.Unwatch(a.Client, a.Timestamp)
	ctx, cancel := context.WithDeadline(ctx, time.Now().Add(s.settings.RequestTimeout))
	defer cancel()
	asg, err := s.submit(ctx, p, dest, a)
	if ordered != nil {
		ordered()
	}
	if err != nil {
		return ExecuteResult{}, err
	}
	if p.NoQuorum > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.NoQuorum)
		defer cancel()
	}
	best, err := c.Await(ctx, a.request(""), set, s.replySettle(p))
	if err != nil {
		return ExecuteResult{}, s.requestError(err, a)
	}
	return executeResult(best, asg), nil
}

func executeResult(best client.Result, asg Assignment) ExecuteResult {
	res := ExecuteResult{Seq: best.Seq, View: max(best.View, asg.View), Result: string(best.Value), Replies: best.Replies}
	if res.Result == kv.Absent {
		res.Result, res.Absent = "", true
	}
	return res
}

// replySettle is whose replies, beyond a quorum of matching ones, an execution waits for:
// every live replica, and the faulty ones that still reply until they report whether
// they executed it (at most the late grace); or, with faults not known, a grace for all.
func (s *Service) replySettle(p settle.Plan) client.Settle {
	if p.FaultsKnown {
		return client.Settle{Need: p.Live, Late: p.Replying, Grace: p.LateGrace, AskLate: true}
	}
	return client.Settle{LateMembers: true, Grace: p.Grace}
}
