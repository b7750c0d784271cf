package gateway

import (
	"context"
	"errors"
	"slices"

	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// knownTypes are the message types of the client protocol (docs/protocol.md).
var knownTypes = []string{"init", "pbft_request", "pbft_status", "pbft_execute", "pbft_read", "pbft_fault", "pbft_cluster", "pbft_reconfigure"}

// handleHooks let a caller fit Handle into its own ordering; stdio needs them, the
// HTTP API does not.
type handleHooks struct {
	// ordered, if set, is called once a pbft_execute's request is ordered or has failed
	// to be (maybe more than once; the first call counts), before its replies are awaited.
	ordered func()
	// settle, if set, runs before a pbft_status, pbft_fault or pbft_cluster is answered,
	// so that it reflects the executions accepted before it.
	settle func()
	// ids, if set, numbers the requests instead of taking msg_id as their timestamp.
	ids *requestIDs
	// stdio is set for the stdio input, the one place pbft_reconfigure is served.
	stdio bool
}

// Handle answers one message of the client protocol: the reply body (type, in_reply_to
// and the reply's fields, without msg_id, which is the writer's) or the protocol error.
// stdio and POST /v1/messages both answer through it.
func (s *Service) Handle(ctx context.Context, l *jsonl.Line, h handleHooks) (jsonl.Object, *ProtoError) {
	if h.ordered != nil {
		defer h.ordered()
	}
	msgID, ok := l.MsgIDInt()
	reply := func(typ string, fields ...jsonl.Field) (jsonl.Object, *ProtoError) {
		return append(jsonl.Object{{Key: "type", Value: typ}, {Key: "in_reply_to", Value: msgID}}, fields...), nil
	}
	fail := func(err error) (jsonl.Object, *ProtoError) { return nil, asProtoError(err) }
	switch {
	case !slices.Contains(knownTypes, l.Type):
		return fail(protoErr(CodeNotSupported, "unknown message type %q", l.Type))
	case !ok:
		return fail(protoErr(CodeMalformed, "msg_id must be an integer"))
	case l.Type == "init":
		if err := s.Init(l); err != nil {
			return fail(err)
		}
		return reply("init_ok")
	case !s.Initialised():
		return fail(protoErr(CodeUnavailable, "not initialised: send init first"))
	}
	if h.settle != nil && l.Type != "pbft_request" && l.Type != "pbft_execute" {
		h.settle()
	}
	switch l.Type {
	case "pbft_request":
		args, id, err := requestOf(l, msgID, h.ids)
		if err != nil {
			return fail(err)
		}
		asg, err := s.submit(ctx, s.backend.Plan(), l.Dest, args)
		if prev, _ := id.previous(); err != nil && isStale(err) && prev != nil {
			asg, err = *prev, nil // answered before; the replicas no longer remember it
		}
		if err != nil {
			return fail(err)
		}
		id.noteAssigned(asg)
		return requestOK(msgID, asg), nil
	case "pbft_execute":
		args, id, err := requestOf(l, msgID, h.ids)
		if err != nil {
			return fail(err)
		}
		res, err := s.executeOrdered(ctx, l.Dest, args, h.ordered)
		if _, prev := id.previous(); err != nil && isStale(err) && prev != nil {
			res, err = *prev, nil // answered before; the replicas no longer remember it
		}
		if err != nil {
			return fail(err)
		}
		id.noteExecuted(res)
		return reply("pbft_execute_ok", jsonl.Field{Key: "sequence_number", Value: res.Seq},
			jsonl.Field{Key: "view", Value: res.View}, jsonl.Field{Key: "result", Value: res.Result},
			jsonl.Field{Key: "replies", Value: res.Replies})
	case "pbft_read":
		if _, err := ParseRead(l, msgID); err != nil {
			return fail(err)
		}
		args, err := ParseRequest(l, msgID)
		if err != nil {
			return fail(err)
		}
		// An ordered fallback needs a timestamp like any request, but a read takes no
		// msg_id from its client: reusing one is no conflict.
		if err := h.ids.fresh(&args, msgID); err != nil {
			return fail(err)
		}
		if h.settle != nil {
			s.Sync(ctx) // every live replica executes what the lines before submitted
		}
		res, err := s.Read(ctx, l.Dest, args, false)
		if err != nil {
			return fail(err)
		}
		return reply("pbft_read_ok", jsonl.Field{Key: "result", Value: res.Result},
			jsonl.Field{Key: "replies", Value: res.Replies}, jsonl.Field{Key: "ordered", Value: res.Ordered})
	case "pbft_status":
		seq, present, err := l.PositiveInt("sequence_number")
		if err != nil || !present {
			return fail(protoErr(CodeMalformed, "sequence_number must be a positive integer"))
		}
		st, err := s.Status(ctx, l.Dest, seq)
		if err != nil {
			return fail(err)
		}
		return reply("pbft_status_ok", jsonl.Field{Key: "phase", Value: st.Phase},
			jsonl.Field{Key: "prepares_received", Value: st.Prepares},
			jsonl.Field{Key: "commits_received", Value: st.Commits}, jsonl.Field{Key: "executed", Value: st.Executed})
	case "pbft_reconfigure":
		res, err := s.Reconfigure(ctx, l, msgID, h.ids, h.stdio)
		if err != nil {
			return fail(err)
		}
		return reply("pbft_reconfigure_ok", jsonl.Field{Key: "sequence_number", Value: res.Seq},
			jsonl.Field{Key: "configuration", Value: res.Configuration}, jsonl.Field{Key: "primary", Value: res.Primary})
	case "pbft_fault":
		if err := s.Fault(ctx, l); err != nil {
			return fail(err)
		}
		return reply("pbft_fault_ok")
	default: // pbft_cluster
		cl, err := s.Cluster(ctx, l.Dest)
		if err != nil {
			return fail(err)
		}
		reps := make([]jsonl.Object, 0, len(cl.Replicas))
		for _, r := range cl.Replicas {
			reps = append(reps, jsonl.Object{{Key: "node", Value: r.Node}, {Key: "view", Value: r.View},
				{Key: "last_executed", Value: r.LastExecuted}, {Key: "stable_checkpoint", Value: r.StableCheckpoint},
				{Key: "fault", Value: r.Fault}})
		}
		return reply("pbft_cluster_ok", jsonl.Field{Key: "view", Value: cl.View}, jsonl.Field{Key: "primary", Value: cl.Primary},
			jsonl.Field{Key: "replicas", Value: reps})
	}
}

// requestOf reads a pbft_request or pbft_execute and gives it its PBFT timestamp: from
// ids (stdio) or msg_id itself (HTTP, where it must then be positive).
func requestOf(l *jsonl.Line, msgID int64, ids *requestIDs) (RequestArgs, *requestID, error) {
	args, err := ParseRequest(l, msgID)
	if err != nil {
		return args, nil, err
	}
	if ids == nil && msgID < 1 {
		return args, nil, errTimestamp
	}
	id, err := ids.stamp(&args, msgID)
	return args, id, err
}

// errTimestamp refuses a request whose msg_id cannot be its PBFT timestamp (over HTTP,
// where msg_id is the timestamp so that any gateway deduplicates a client's retries).
var errTimestamp = protoErr(CodeMalformed, "msg_id of a request must be a positive integer, growing with each new request of the client")

// isStale reports the replicas' refusal of a request older than their reply cache.
func isStale(err error) bool {
	var pe *ProtoError
	return errors.As(err, &pe) && pe.Code == CodePreconditionFail && !pe.conflict
}

// errorBody is the body of an error reply to l (in_reply_to is null when l's msg_id is
// missing or not an integer).
func errorBody(l *jsonl.Line, pe *ProtoError) jsonl.Object {
	var inReplyTo any
	if l != nil {
		if id, ok := l.MsgIDInt(); ok {
			inReplyTo = id
		}
	}
	return jsonl.Object{{Key: "type", Value: "error"}, {Key: "in_reply_to", Value: inReplyTo},
		{Key: "code", Value: pe.Code}, {Key: "text", Value: pe.Text}}
}

// asProtoError is err as the client protocol reports it; anything not already a
// protocol error is a timeout (the cluster did not answer in time).
func asProtoError(err error) *ProtoError {
	var pe *ProtoError
	if !errors.As(err, &pe) {
		pe = protoErr(CodeTimeout, "%v", err)
	}
	return pe
}
