package client

import (
	"context"
	"time"

	"github.com/pbft-nats/pbft/pbft"
)

// The read-only path (Castro & Liskov, TOCS 2002, §5.1.3): a read goes to every replica
// as a read-only request, each executes it at once on its current state, and the result
// is accepted at q matching replies. It is linearizable because writes are accepted at q
// too (Invoke, Await): a write acknowledged by q replicas and a read answered by q share
// at least 2q-n >= f+1 replicas, so a correct one that executed the write is among the
// readers, and q replies cannot agree on the value before it.

// NewReadRequest builds a read-only request from this client with its authenticator,
// which covers the read-only flag: nobody can turn it into an ordered request, nor turn a
// write into a read.
func (c *Client) NewReadRequest(client string, t uint64, op []byte) *pbft.Request {
	req := &pbft.Request{Gateway: c.id, Client: client, Timestamp: t, Op: op, ReadOnly: true}
	req.Auth = c.keys.Load().RequestTags(pbft.RequestDigest(req))
	return req
}

// ReadOnly sends r to every replica as a read-only request and waits for the read-only
// replies in set (watched before): from every replica in s.Need, then at most s.Grace for
// those in s.Late (s.LateMembers: the members of the configuration the client
// follows); with neither, until q match or every replica replied. ctx bounds the
// wait. It returns the largest group of matching replies and whether it has q members.
// It does not retransmit: a caller whose read did not agree orders the operation instead.
func (c *Client) ReadOnly(ctx context.Context, r Request, set *ReplySet, s Settle) (Result, bool, error) {
	if err := c.sendReadOnly(r); err != nil {
		return Result{}, false, err
	}
	if s.LateMembers {
		s.Late = c.replicas() // as in Await: the members of the configuration followed now
	}
	if len(s.Need) == 0 && len(s.Late) == 0 {
		best, agreed := c.awaitReadOnly(ctx, set, nil)
		return best, agreed, nil
	}
	var grace <-chan time.Time
	for {
		changed := set.Changed()
		if s.LateMembers {
			s.Late = c.replicas()
		}
		if _, all := set.ReadOnlyBest(); coversAll(all, s.Need) && len(all) >= c.quorum().Weak() {
			if coversAll(all, s.Late) {
				break
			}
			if grace == nil {
				grace = time.After(s.Grace)
			}
		}
		select {
		case <-changed:
			continue
		case <-grace:
		case <-ctx.Done():
		}
		break
	}
	best, _ := set.ReadOnlyBest()
	return best, best.Replies >= c.quorum().Commit(), nil
}

func (c *Client) sendReadOnly(r Request) error {
	if limit := c.MaxOperation(); len(r.Op) > limit {
		return fail(ErrTooLarge, "operation is %d bytes; this cluster takes at most %d", len(r.Op), limit)
	}
	// No tags of its own: the envelope of the batch it goes in authenticates it (batch.go).
	req := &pbft.Request{Gateway: c.id, Client: r.Client, Timestamp: r.Timestamp, Op: r.Op, ReadOnly: true}
	if err := c.enqueue(everyReplica, req); err != nil {
		return fail(ErrUnavailable, "send: %v", err)
	}
	return nil
}

// awaitReadOnly waits until q read-only replies in set match or every replica replied,
// or ctx ends or expire fires, and returns the largest group and whether it has q. The
// reader wakes once, not at every reply.
func (c *Client) awaitReadOnly(ctx context.Context, set *ReplySet, expire <-chan struct{}) (Result, bool) {
	ch := wakeChans.Get().(chan struct{})
	set.addWaiter(roWaiter{need: c.quorum().Commit(), all: len(c.replicas()), ch: ch, signal: true})
	select {
	case <-ch:
	case <-expire:
	case <-ctx.Done():
	}
	// Once forgotten, nothing sends on ch: drain a wake that came meanwhile, then reuse it.
	set.removeWaiter(ch)
	select {
	case <-ch:
	default:
	}
	wakeChans.Put(ch)
	best := set.ReadOnlyResult()
	return best, best.Replies >= c.quorum().Commit()
}

// Read is the client's read: the read-only path first, waiting a short while (readWait,
// up to twice that) for q matching replies; when they do not agree (a write in flight, a lagging or faulty
// replica), the same operation as an ordered request (Invoke). ordered says which path
// gave the result.
func (c *Client) Read(ctx context.Context, r Request) (res Result, ordered bool, err error) {
	set, ok := c.Watch(r.Client, r.Timestamp, r.Op)
	if !ok {
		return Result{}, false, inFlight(r)
	}
	err = c.sendReadOnly(r)
	var best Result
	var agreed bool
	if err == nil {
		// The client's clock, not a context with a deadline (the caller's context is
		// shared by many readers, and registering a child with it at every read contends on
		// its lock) nor a timer per read (clock.go).
		best, agreed = c.awaitReadOnly(ctx, set, c.clock.expiry(c.readWait()))
	}
	c.Unwatch(r.Client, r.Timestamp)
	if err != nil {
		return Result{}, false, err
	}
	if agreed {
		return best, false, nil
	}
	res, err = c.Invoke(ctx, r)
	return res, true, err
}

// readWait is the read-only path's short wait (at least this, less than twice it: the
// client clock's period): a retransmission delay, after which an ordered request is what
// a slow answer would have cost anyway.
func (c *Client) readWait() time.Duration { return c.retransmitPeriod() }

// IsNotReadOnly reports a result q replicas agree on refusing a read-only request: the
// application does not class its operation as read-only.
func IsNotReadOnly(best Result, q pbft.Quorum) bool {
	return best.Replies >= q.Weak() && string(best.Value) == pbft.NotReadOnlyResult
}
