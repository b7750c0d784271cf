package gateway

import (
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// pipeline lets a pbft_request line go on before the requests of the lines before it are
// ordered (PBFT_STDIO_WINDOW of them at most), so that a stream of requests is not paced
// by one round trip per line.
//
// What must not change is the order in which requests reach the primary: that order
// decides their sequence numbers. So the reader sends each pipelined request itself,
// synchronously and in line order, on the gateway's one bus connection (NATS keeps a
// connection's order), and only to a replica that orders it without forwarding: the
// primary, with every replica live. The Submit that then waits for its pre-prepare
// (in the background) carries the same request again, which the primary takes as the
// retransmission it is. A request that does not qualify takes the sequential path, which
// sends it only after every earlier one was sent.
type pipeline struct {
	window chan struct{} // a token per request in flight
	peak   int           // most requests in flight at once (read by tests after Run)
}

func newPipeline(window int) *pipeline {
	if window <= 1 {
		return nil
	}
	return &pipeline{window: make(chan struct{}, window)}
}

// send sends l's request to the primary, in line order, if it may be pipelined; it
// reports whether it did. It takes a window token, which the caller returns once the
// request is answered.
func (p *pipeline) send(svc *Service, l *jsonl.Line, ids *requestIDs) bool {
	if p == nil || ids == nil || l.Type != "pbft_request" {
		return false
	}
	b := svc.Backend()
	if b == nil || !b.InProcess() {
		return false
	}
	msgID, ok := l.MsgIDInt()
	if !ok {
		return false
	}
	target := svc.replica(l.Dest)
	c := b.Client()
	plan := b.Plan()
	if target != c.Primary() || len(plan.Live) != len(svc.ids) {
		return false
	}
	// A retransmission with another operation is refused by stamp; Handle answers it.
	args, _, err := requestOf(l, msgID, ids)
	if err != nil {
		return false
	}
	p.window <- struct{}{}
	p.peak = max(p.peak, len(p.window))
	if err := c.Send(target, c.NewRequest(args.Client, args.Timestamp, []byte(args.Operation))); err != nil {
		<-p.window
		return false
	}
	return true
}

func (p *pipeline) done() { <-p.window }
