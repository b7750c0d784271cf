package client

import (
	"context"
	"fmt"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft"
)

// Request is one operation of a client: Client is whose it is (the name replicas
// deduplicate and cache replies by), Timestamp orders the client's requests.
type Request struct {
	Client    string
	Timestamp uint64
	Op        []byte
	// To is the replica the request goes to first; empty: the primary of the latest
	// view seen.
	To string
}

// Assignment is where the cluster ordered a request.
type Assignment struct {
	Seq, View uint64
}

// minRetransmit keeps retransmissions from flooding the bus when the view-change timeout
// is tiny (tests).
const minRetransmit = 20 * time.Millisecond

// RetransmitAfter is how long a client waits for an outcome before it sends the request
// to every replica: well under the view-change timeout, so backups start timing it early.
func RetransmitAfter(viewChangeTimeout time.Duration) time.Duration {
	return max(viewChangeTimeout/4, minRetransmit)
}

// stallRetransmissions is how many retransmissions without an outcome make the client ask
// which configuration is in force (learn): a reconfiguration made by another client shows
// in replies and answers, unless the replicas the client sends to all left (they neither
// order nor reply) or the replies come only from replicas whose keys it lacks.
const stallRetransmissions = 3

// progress is what a wait learns each time it looks at its outcome.
type progress struct {
	done   bool
	wake   <-chan struct{}  // closes when there may be news
	news   <-chan struct{}  // receives when there may be news (answers to queries), if set
	expire <-chan time.Time // fires when the wait ends with what it has (a grace), if set
}

// retransmit is the client's one retransmission loop (Castro & Liskov §4.1): it looks at
// the outcome whenever there may be news and, each Retransmit delay without one, sends
// req to every replica and calls resent (if set). It returns nil once look reports done
// or its expiry fires, ctx's error if ctx ends first.
func (c *Client) retransmit(ctx context.Context, req *pbft.Request, look func() progress, resent func()) error {
	return c.retransmitUntil(ctx, time.Time{}, req, look, resent)
}

// retransmitUntil is retransmit that also gives up at until (if not zero) with
// context.DeadlineExceeded.
//
// The Retransmit delay is the client's clock (clock.go): a wait retransmits when the
// clock's half period two after the one it started in ends, between one and one and a
// half delays after its send, as a read's short wait ends. A timer per request
// (allocated, put into and taken out of the runtime's timer heap at every wait) was
// about 6% of a load tool's CPU, and a request answered in milliseconds never needs it.
// Only a wait whose deadline comes within two periods has a timer of its own, so that
// the deadline is kept to the timer's precision.
func (c *Client) retransmitUntil(ctx context.Context, until time.Time, req *pbft.Request, look func() progress, resent func()) error {
	period := c.retransmitPeriod()
	var deadline *time.Timer
	defer func() {
		if deadline != nil {
			deadline.Stop()
		}
	}()
	var tick <-chan struct{}
	var expired <-chan time.Time
	sent := 0
	for {
		p := look()
		if p.done {
			return nil
		}
		if tick == nil {
			tick = c.clock.expiry(period)
		}
		if deadline == nil && !until.IsZero() {
			if left := time.Until(until); left < 2*period {
				deadline = time.NewTimer(left)
				expired = deadline.C
			}
		}
		select {
		case <-p.wake:
		case <-p.news:
		case <-p.expire:
			return nil
		case <-expired:
			return context.DeadlineExceeded
		case <-tick:
			tick = nil
			req = c.retag(req)
			_ = c.Broadcast(req)
			if sent++; sent == stallRetransmissions {
				c.learn() // the members this client sends to may all have left
			}
			if resent != nil {
				resent()
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// retransmitPeriod is the client clock's period: the Retransmit delay, not under
// minRetransmit.
func (c *Client) retransmitPeriod() time.Duration { return max(c.cfg.Retransmit, minRetransmit) }

// retag gives req a tag for every replica the client knows now: the replicas that joined
// since it was built (the client followed a reconfiguration: Discover) check it too, and
// answer a retransmission from their reply caches only if it is authentic.
// A retransmission is rare, so it is simply tagged anew.
func (c *Client) retag(req *pbft.Request) *pbft.Request {
	r := *req
	r.Auth = c.keys.Load().RequestTags(pbft.RequestDigest(&r))
	return &r
}

// build checks r and makes its authenticated request. An operation larger than the bus
// can carry in a pre-prepare is refused: sent anyway, it would never be ordered.
func (c *Client) build(r Request) (*pbft.Request, error) {
	if limit := c.MaxOperation(); len(r.Op) > limit {
		return nil, fail(ErrTooLarge, "operation is %d bytes; this cluster takes at most %d", len(r.Op), limit)
	}
	return c.NewRequest(r.Client, r.Timestamp, r.Op), nil
}

func (c *Client) first(r Request) string {
	if r.To != "" {
		return r.To
	}
	return c.Primary()
}

// Invoke is the PBFT client's own path: send the request to the primary of the latest
// view seen (or r.To), accept the result once a quorum of replicas (Accept) reply with
// the same one, and retransmit the request to every replica while that takes too long.
// It asks no replica where the request was ordered, so it costs the replicas nothing but
// the request.
func (c *Client) Invoke(ctx context.Context, r Request) (Result, error) {
	req, err := c.build(r)
	if err != nil {
		return Result{}, err
	}
	set, ok := c.Watch(r.Client, r.Timestamp, r.Op)
	if !ok {
		return Result{}, inFlight(r)
	}
	defer c.Unwatch(r.Client, r.Timestamp)
	until := time.Now().Add(c.cfg.Timeout)
	bus.Stamp(bus.StageInvoke, "", r.Client)
	if err := c.enqueue(c.first(r), req); err != nil {
		return Result{}, fail(ErrUnavailable, "send: %v", err)
	}
	best, err := c.agreed(ctx, until, req, set)
	bus.Stamp(bus.StageWoken, "", r.Client)
	if err != nil {
		return Result{}, givenUp(ctx, c.timeout(fmt.Sprintf("no quorum (%d) of matching replies", c.Accept()), c.replicas()))
	}
	if isConflict(best, c.Accept()) {
		return Result{}, conflict(r, best.Seq)
	}
	c.NoteView(set.vouchedView(best, c.quorum().Weak()))
	return best, nil
}

// agreed waits for a quorum (Accept) of matching replies in set, retransmitting req
// while they are missing, until ctx ends or the time until.
func (c *Client) agreed(ctx context.Context, until time.Time, req *pbft.Request, set *ReplySet) (Result, error) {
	var best Result
	err := c.retransmitUntil(ctx, until, req, func() progress {
		// Woken only once enough replies for the smallest quorum that could decide.
		b, ok, changed := set.agreedOrWake(c.Accept(), c.leastAccept())
		if ok {
			best = b
			return progress{done: true}
		}
		return progress{wake: changed}
	}, nil)
	return best, err
}

func inFlight(r Request) *Error {
	return fail(ErrInFlight, "client %s has request id %d in flight with another operation", r.Client, r.Timestamp)
}

func conflict(r Request, seq uint64) *Error {
	e := fail(ErrConflict, "client %s used request id %d before with another operation (ordered at %d)", r.Client, r.Timestamp, seq)
	e.Seq = seq
	return e
}

// confirmConflict follows a replica's claim that req's id was ordered with another
// operation: it sends req to every replica and waits for a quorum of matching replies.
// Matching conflicts refuse it; anything else (the claim was false: a faulty replica) is
// where the request was ordered.
func (c *Client) confirmConflict(ctx context.Context, r Request, req *pbft.Request) (Assignment, error) {
	set, ok := c.Watch(r.Client, r.Timestamp, r.Op)
	if !ok {
		return Assignment{}, inFlight(r)
	}
	defer c.Unwatch(r.Client, r.Timestamp)
	_ = c.Broadcast(req)
	best, err := c.agreed(ctx, time.Time{}, req, set)
	if err != nil {
		return Assignment{}, fail(ErrTimeout,
			"replica said request %d of client %s conflicts with another operation, but a quorum of replicas did not confirm it within %v",
			r.Timestamp, r.Client, c.cfg.Timeout)
	}
	if isConflict(best, c.Accept()) {
		return Assignment{}, conflict(r, best.Seq)
	}
	c.NoteView(set.vouchedView(best, c.quorum().Weak()))
	return Assignment{Seq: best.Seq, View: best.View}, nil
}

// Route says whom a Submit asks where its request was ordered, beyond r.To.
type Route struct {
	// Broadcast sends the request to every replica at once as well: the replica asked
	// stands in for one that cannot pass the request on.
	Broadcast bool
	// Fallback are asked too once the request is retransmitted: the replica asked may be
	// behind (catching up after a restart) and see the ordering late.
	Fallback []string
}

// Submit hands r to replica r.To (a backup forwards it to the primary) and waits until a
// pre-prepare orders it, retransmitting it to every replica when that takes too long.
func (c *Client) Submit(ctx context.Context, r Request, route Route) (Assignment, error) {
	req, err := c.build(r)
	if err != nil {
		return Assignment{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	wait := int(c.cfg.Timeout / time.Millisecond)
	type result struct {
		a   *pbft.Answer
		err error
	}
	size := len(c.replicas()) + 1
	done, news := make(chan result, size), make(chan struct{}, size)
	asked := map[string]bool{}
	ask := func(id string) {
		asked[id] = true
		answer := c.sendQuery(id, &pbft.Query{Op: pbft.OpSubmit, Request: pbft.Marshal(req), WaitMillis: wait})
		go func() {
			a, err := answer(ctx)
			done <- result{a, err}
			news <- struct{}{}
		}()
	}
	ask(c.first(r))
	if route.Broadcast {
		_ = c.Broadcast(req)
	}
	var (
		asg       Assignment
		outcome   error
		last      result
		answers   int
		conflicts bool
	)
	look := func() progress {
		for {
			select {
			case res := <-done:
				answers++
				last = res
				if res.err != nil || !res.a.Ordered && res.a.Error != pbft.ErrStale {
					continue // another replica asked may still see it ordered
				}
				switch {
				case res.a.Error == pbft.ErrStale:
					outcome = fail(ErrStale, "request %d of client %s is older than the replicas' reply cache remembers", r.Timestamp, r.Client)
				case res.a.Conflict:
					conflicts = true
				default:
					asg = Assignment{Seq: res.a.Seq, View: res.a.View}
				}
				return progress{done: true}
			default:
			}
			if answers < len(asked) {
				return progress{wake: news}
			}
			outcome = c.notOrdered(last.err, asked)
			return progress{done: true}
		}
	}
	if err := c.retransmit(ctx, req, look, func() {
		for _, id := range route.Fallback {
			if !asked[id] {
				ask(id)
			}
		}
	}); err != nil {
		return Assignment{}, c.notOrdered(last.err, asked)
	}
	if outcome != nil {
		return Assignment{}, outcome
	}
	if conflicts {
		return c.confirmConflict(ctx, r, req)
	}
	c.NoteView(asg.View)
	return asg, nil
}

func (c *Client) notOrdered(last error, asked map[string]bool) error {
	if last != nil {
		return c.timeout("request not ordered: no answer", c.inClusterOrder(asked))
	}
	return c.timeout("request not ordered: no pre-prepare seen", c.inClusterOrder(asked))
}

// Settle says when an answer on replies may go beyond a quorum of matching ones; a
// gateway's settle policy decides it.
type Settle struct {
	// Need are replicas whose replies are awaited (until ctx ends).
	Need []string
	// Late are replicas whose replies are awaited at most Grace once Need replied.
	Late  []string
	Grace time.Duration
	// LateMembers makes Late the members of the configuration the client follows, read
	// anew at each reply: a reconfiguration learnt while the request waits (followNewer)
	// brings its members' replies in and leaves the removed ones out.
	LateMembers bool
	// AskLate waits for each Late replica on what it reports instead of a fixed Grace: it
	// is asked whether it executed the request, and answers once it has (or after Grace).
	// A replica sends its reply before that answer on the same connection, and the client
	// handles both in order, so the answer settles whether the reply counts.
	AskLate bool
}

// Await waits for the replies to r in set (watched before r was sent), retransmitting r
// to every replica while they are missing: a request that executed before (through
// another client, say) is answered from each replica's reply cache only when that replica
// receives it. It returns the largest group of matching replies once a quorum (Accept)
// match and s lets the answer go, or when ctx ends with a quorum matching; a quorum of
// matching conflicts refuses the request at once.
func (c *Client) Await(ctx context.Context, r Request, set *ReplySet, s Settle) (Result, error) {
	req := c.NewRequest(r.Client, r.Timestamp, r.Op)
	accept := c.Accept()
	var grace <-chan time.Time
	var conflicting Result
	late := c.lateReports(ctx, s)
	err := c.retransmit(ctx, req, func() progress {
		changed := set.Changed()
		if s.LateMembers {
			s.Late = c.replicas() // the client may have followed a reconfiguration meanwhile
		}
		best, all := set.Best()
		accept = c.acceptOf(best) // counted in the configuration that replied
		if isConflict(best, accept) {
			conflicting = best
			return progress{done: true}
		}
		if best.Replies >= accept && coversAll(all, s.Need) {
			if coversAll(all, s.Late) {
				return progress{done: true}
			}
			if s.AskLate {
				if late.settled(all, best.Seq) {
					return progress{done: true}
				}
				return progress{wake: changed, news: late.news}
			}
			if grace == nil {
				grace = time.After(s.Grace)
			}
		}
		return progress{wake: changed, expire: grace}
	}, nil)
	if conflicting.Replies > 0 {
		return Result{}, conflict(r, conflicting.Seq)
	}
	best, _ := set.Best()
	if accept = c.acceptOf(best); err != nil && best.Replies < accept {
		return Result{}, c.timeout(fmt.Sprintf("only %d matching replies, need %d,", best.Replies, accept), c.replicas())
	}
	return best, nil
}

// lateReports asks the Late replicas of s, once, whether they executed a sequence number,
// and collects who answered.
type lateReports struct {
	c        *Client
	ctx      context.Context
	s        Settle
	asked    bool
	news     chan struct{}
	answered chan string
	reported map[string]bool
}

func (c *Client) lateReports(ctx context.Context, s Settle) *lateReports {
	n := len(s.Late)
	return &lateReports{c: c, ctx: ctx, s: s, news: make(chan struct{}, n), answered: make(chan string, n), reported: map[string]bool{}}
}

// settled reports whether every Late replica replied or reported (having executed seq, or
// not within Grace); the first call asks those that have not replied.
func (l *lateReports) settled(replied map[string]bool, seq uint64) bool {
	if !l.asked {
		l.asked = true
		for _, id := range l.s.Late {
			if replied[id] {
				l.reported[id] = true
				continue
			}
			go func() {
				// Whatever the answer, the replica has reported: a reply it sent came first.
				_, _ = l.c.Query(l.ctx, id, &pbft.Query{Op: pbft.OpInfo, Wait: &pbft.Wait{MinExecuted: seq},
					WaitMillis: int(l.s.Grace / time.Millisecond)})
				l.answered <- id
				l.news <- struct{}{}
			}()
		}
	}
	for {
		select {
		case id := <-l.answered:
			l.reported[id] = true
			continue
		default:
		}
		break
	}
	for _, id := range l.s.Late {
		if !replied[id] && !l.reported[id] {
			return false
		}
	}
	return true
}

func coversAll(have map[string]bool, want []string) bool {
	for _, id := range want {
		if !have[id] {
			return false
		}
	}
	return true
}
