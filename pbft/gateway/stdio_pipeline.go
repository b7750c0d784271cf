package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// pipeline lets pbft_request lines go on before the requests of the lines before them
// are ordered (PBFT_STDIO_WINDOW of them at most, fewer when the cluster is slow), so
// that a stream of requests is not paced by one round trip per line.
//
// The reader gathers consecutive new requests to the primary into a run and sends the
// run in one go (client.SendAll: one bus message, no query) when the input has nothing
// more buffered, the window is full, or a line that is not such a request comes. One
// goroutine per run waits for its requests' replies in line order and fills their
// answers; a quorum of replies names the sequence number the request was ordered at.
//
// What must not change is the order in which requests reach the primary: that order
// decides their sequence numbers, and a request that reached it after a later one of its
// client had executed would be refused as older than the reply cache. Runs are sent one
// after another by the reader, on the gateway's one connection, which keeps their order;
// only requests to the replica that orders them without forwarding (the primary, with
// every replica live) and never seen before in the session are gathered. Any other
// line first waits for the runs before it to be answered, so it sees them as the
// sequential path would: a retransmission of one of them, in particular, is answered
// with its original's number.
type pipeline struct {
	window int           // requests in flight at most
	hold   time.Duration // how long the oldest request in flight may wait before no more go

	gathered *run // the run the reader is gathering (the reader's alone)
	// allLive caches, for a stretch of gathered lines, whether every replica is live
	// (0: not known): faults change only at lines that are not gathered (pbft_fault,
	// pbft_reconfigure), and every such line clears it. The reader's alone.
	allLive int8

	mu       sync.Mutex
	answered *sync.Cond // broadcast whenever a request in flight is answered
	inflight int        // requests sent and not answered
	// allowed is how many may be in flight now (1 to window): one more for each request
	// answered within hold, half as many after a run with one that took longer than 1.5
	// hold (still short of the retransmission delay), so that the requests queued at the
	// primary take about hold to drain whatever its speed.
	allowed float64
	runs    []*run // runs sent with requests not answered yet, in line order
	peak    int    // most requests in flight at once (read by tests after Run)
	largest int    // most requests in one run (read by tests after Run)
	running sync.WaitGroup
}

// run is requests sent together.
type run struct {
	to    string // the primary
	sent  time.Time
	left  int  // requests not answered yet (guarded by pipeline.mu)
	slow  bool // one of them took so long that the window was halved (pipeline.mu)
	items []runItem
}

type runItem struct {
	l    *jsonl.Line
	args RequestArgs
	id   *requestID
	sl   *slot
}

// newPipeline returns a pipeline of window requests (nil: one at a time). hold is half
// the PBFT client's retransmission delay: a request waiting longer is sent to every
// replica, and backups start timing it, so a slow cluster (a loaded machine) must get
// fewer requests at once, not a view change.
func newPipeline(window int, viewChangeTimeout time.Duration) *pipeline {
	if window <= 1 {
		return nil
	}
	p := &pipeline{window: window, hold: client.RetransmitAfter(viewChangeTimeout) / 2, allowed: 1}
	p.answered = sync.NewCond(&p.mu)
	return p
}

// gather adds l's request to the run being gathered if it may be pipelined; sl is its
// answer's slot. It reports false, gathering nothing, for any other line.
func (s *Stdio) gather(ctx context.Context, l *jsonl.Line, ids *requestIDs, sl *slot) bool {
	p := s.pipe
	to, ok := p.qualifies(s.svc, l, ids)
	if !ok {
		return false
	}
	if g := p.gathered; g != nil && g.to != to {
		s.flush(ctx)
	}
	if !p.roomFor(p.size() + 1) {
		// Send what is gathered, then wait until half the window is free (or the oldest
		// is answered), so that runs stay large.
		s.flush(ctx)
		p.waitRoom()
	}
	args, id, ok := p.stamp(l, ids)
	if !ok {
		return false
	}
	if p.gathered == nil {
		p.gathered = &run{to: to}
	}
	p.gathered.items = append(p.gathered.items, runItem{l: l, args: args, id: id, sl: sl})
	return true
}

func (p *pipeline) size() int {
	if p.gathered == nil {
		return 0
	}
	return len(p.gathered.items)
}

// qualifies reports whether l is a new pbft_request to the primary with every replica
// live, and the primary.
func (p *pipeline) qualifies(svc *Service, l *jsonl.Line, ids *requestIDs) (string, bool) {
	if ids == nil || l.Type != "pbft_request" {
		return "", false
	}
	b := svc.Backend()
	if _, ok := l.MsgIDInt(); b == nil || !b.InProcess() || !ok {
		return "", false
	}
	primary := b.Client().Primary()
	if svc.replica(l.Dest) != primary {
		return "", false
	}
	if p.allLive == 0 {
		p.allLive = -1
		if ids, _ := svc.members(); len(b.Plan().Live) == len(ids) {
			p.allLive = 1
		}
	}
	return primary, p.allLive == 1
}

// stamp parses l's request and gives it its timestamp if its (client, msg_id) is new.
func (p *pipeline) stamp(l *jsonl.Line, ids *requestIDs) (RequestArgs, *requestID, bool) {
	msgID, _ := l.MsgIDInt()
	args, err := ParseRequest(l, msgID)
	if err != nil {
		return args, nil, false
	}
	id, ok := ids.stampNew(&args, msgID)
	return args, id, ok
}

// roomFor reports whether n requests more than those in flight may go, and the oldest
// in flight has waited less than hold.
func (p *pipeline) roomFor(n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.roomLocked(n)
}

func (p *pipeline) roomLocked(n int) bool {
	if p.inflight+n > int(p.allowed) {
		return false
	}
	return len(p.runs) == 0 || time.Since(p.runs[0].sent) < p.hold
}

// waitRoom waits until half the allowed requests may go, or none is in flight.
func (p *pipeline) waitRoom() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.inflight > 0 && !p.roomLocked(max(int(p.allowed)/2, 1)) {
		p.answered.Wait()
	}
}

// flush sends the run gathered, if any, and answers its requests in the background.
func (s *Stdio) flush(ctx context.Context) {
	p := s.pipe
	if p == nil || p.gathered == nil {
		return
	}
	r := p.gathered
	p.gathered = nil
	reqs := make([]client.Request, len(r.items))
	for i, it := range r.items {
		reqs[i] = it.args.request(r.to)
	}
	r.left = len(r.items)
	p.mu.Lock()
	r.sent = time.Now()
	p.runs = append(p.runs, r)
	p.inflight += len(r.items)
	p.peak = max(p.peak, p.inflight)
	p.largest = max(p.largest, len(r.items))
	p.mu.Unlock()
	p.running.Add(1)
	s.inflight.Add(1)
	pending := s.svc.Backend().Client().SendAll(r.to, reqs)
	go func() {
		defer s.inflight.Done()
		defer p.running.Done()
		client.WaitAll(ctx, pending, func(i int, res client.Result, err error) {
			it := r.items[i]
			it.sl.body = s.svc.requestAnswer(it.l, it.args, it.id, res, err)
			close(it.sl.ready)
			p.done(r)
		})
	}()
}

// waitPipeline sends the run gathered and waits until every request sent is answered.
func (s *Stdio) waitPipeline(ctx context.Context) {
	if s.pipe == nil {
		return
	}
	s.flush(ctx)
	s.pipe.running.Wait()
}

// done counts one request of r answered.
func (p *pipeline) done(r *run) {
	took := time.Since(r.sent)
	p.mu.Lock()
	defer p.mu.Unlock()
	r.left--
	p.inflight--
	switch {
	case took < p.hold:
		p.allowed = min(p.allowed+1, float64(p.window))
	case took > p.hold*3/2 && !r.slow:
		// Once per run: its requests are answered together, and halving for each would
		// shut the window on one slow round.
		r.slow = true
		p.allowed = max(p.allowed/2, 1)
	}
	for len(p.runs) > 0 && p.runs[0].left == 0 {
		p.runs[0] = nil
		p.runs = p.runs[1:]
	}
	p.answered.Broadcast()
}

// requestAnswer is the answer to a pipelined pbft_request line: what Handle answers, from
// the request's replies instead of a submit query.
func (s *Service) requestAnswer(l *jsonl.Line, a RequestArgs, id *requestID, res client.Result, err error) jsonl.Object {
	if err != nil {
		return errorBody(l, asProtoError(s.requestError(err, a)))
	}
	storeMax(&s.maxSeq, res.Seq)
	asg := Assignment{Seq: res.Seq, View: res.View}
	id.noteAssigned(asg)
	msgID, _ := l.MsgIDInt()
	return requestOK(msgID, asg)
}
