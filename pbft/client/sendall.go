package client

import (
	"context"
	"fmt"
	"time"

	"github.com/pbft-nats/pbft/pbft"
)

// Pending is a request SendAll handed to the bus; Wait gives its outcome.
type Pending struct {
	c      *Client
	r      Request
	req    *pbft.Request
	set    *ReplySet
	expire time.Time
	err    error // why it was not sent
}

// SendAll sends rs to replica to in their order, together: behind whatever is queued
// for to, in as few pbft.KindRequests messages as their sizes allow (each r.To is not
// used). A caller that sends one run after another has them reach to in that order (the
// bus keeps one sender's order), which decides their sequence numbers at the primary.
// Nothing waits here; each Pending must be waited for once, in any order.
//
// It is Invoke for many requests at once: one send instead of one per request, and no
// query, so a stream of requests costs the replicas the requests and their (batched)
// replies only.
func (c *Client) SendAll(to string, rs []Request) []*Pending {
	out := make([]*Pending, len(rs))
	reqs := make([]*pbft.Request, 0, len(rs))
	expire := time.Now().Add(c.cfg.Timeout)
	for i, r := range rs {
		p := &Pending{c: c, r: r, expire: expire}
		out[i] = p
		req, err := c.build(r)
		if err != nil {
			p.err = err
			continue
		}
		set, ok := c.Watch(r.Client, r.Timestamp, r.Op)
		if !ok {
			p.err = inFlight(r)
			continue
		}
		p.req, p.set = req, set
		reqs = append(reqs, req)
	}
	if len(reqs) == 0 {
		return out
	}
	if err := c.enqueue(to, reqs...); err != nil {
		// As Invoke: a send that failed fails its requests (the bus is gone).
		for _, p := range out {
			if p.err == nil {
				p.err = fail(ErrUnavailable, "send: %v", err)
				c.Unwatch(p.r.Client, p.r.Timestamp)
			}
		}
	}
	return out
}

// Wait waits, until ctx ends or the client's Timeout from SendAll, for a quorum (Accept)
// of matching replies, retransmitting the request to every replica while they are
// missing, and returns the result as Invoke does.
func (p *Pending) Wait(ctx context.Context) (Result, error) {
	if p.err != nil {
		return Result{}, p.err
	}
	bounded, cancel := context.WithDeadline(ctx, p.expire)
	defer cancel()
	return p.wait(ctx, bounded)
}

// WaitAll waits for the requests of one SendAll in their order, as Wait does, and calls
// each with every outcome as soon as it has it. They share one deadline, so one run
// costs one timer for it instead of one per request.
func WaitAll(ctx context.Context, ps []*Pending, each func(i int, res Result, err error)) {
	if len(ps) == 0 {
		return
	}
	bounded, cancel := context.WithDeadline(ctx, ps[0].expire)
	defer cancel()
	for i, p := range ps {
		if p.err != nil {
			each(i, Result{}, p.err)
			continue
		}
		res, err := p.wait(ctx, bounded)
		each(i, res, err)
	}
}

// wait is Wait within bounded, a context of caller that ends at p's expiry.
func (p *Pending) wait(caller, bounded context.Context) (Result, error) {
	c := p.c
	defer c.Unwatch(p.r.Client, p.r.Timestamp)
	// Waiting in order, most requests after the first of a run have their quorum already:
	// no retransmission timer for them.
	best, ok := p.set.Agreed(c.Accept())
	if !ok {
		var err error
		if best, err = c.agreed(bounded, time.Time{}, p.req, p.set); err != nil {
			return Result{}, givenUp(caller, c.timeout(fmt.Sprintf("no quorum (%d) of matching replies", c.Accept()), c.replicas()))
		}
	}
	if isConflict(best, c.Accept()) {
		return Result{}, conflict(p.r, best.Seq)
	}
	c.NoteView(p.set.vouchedView(best, c.quorum().Weak()))
	return best, nil
}
