package gateway

import (
	"sync"
	"time"

	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// pipeline lets a pbft_request line go on before the requests of the lines before it are
// ordered (PBFT_STDIO_WINDOW of them at most, fewer when the cluster is slow), so that a
// stream of requests is not paced by one round trip per line.
//
// What must not change is the order in which requests reach the primary: that order
// decides their sequence numbers, and a request that reached it after a later one of its
// client had executed would be refused as older than the reply cache. So the reader
// reads the next line only once the request is on the bus (client.Route.Sent), on the
// gateway's one connection, which keeps its order; and only requests to the replica that
// orders them without forwarding (the primary, with every replica live) are pipelined.
// Any other line first waits for the pipelined requests before it to be answered, so it
// sees them as the sequential path would: a retransmission of one of them, in
// particular, is answered with its original's number.
type pipeline struct {
	window  int           // requests in flight at most
	hold    time.Duration // how long the oldest request in flight may wait before no more go
	running sync.WaitGroup
	mu      sync.Mutex
	flying  map[stampKey]bool // (client, timestamp) of the requests in flight
	// allowed is how many may be in flight now (1 to window): one more for each request
	// ordered within hold, half as many after one that took longer than 1.5 hold (still
	// short of the retransmission delay), so that the requests queued at the primary
	// take about hold to drain whatever its speed.
	allowed float64
	queue   []*flight // the requests in flight, and answered ones not yet popped, in line order
	peak    int       // most requests in flight at once (read by tests after Run)
}

type flight struct {
	sent time.Time
	done chan struct{}
}

type stampKey struct {
	client string
	ts     uint64
}

// newPipeline returns a pipeline of window requests (nil: one at a time). hold is half
// the PBFT client's retransmission delay: a request waiting longer is sent to every
// replica, and backups start timing it, so a slow cluster (a loaded machine) must get
// fewer requests at once, not a view change.
func newPipeline(window int, viewChangeTimeout time.Duration) *pipeline {
	if window <= 1 {
		return nil
	}
	return &pipeline{window: window, hold: client.RetransmitAfter(viewChangeTimeout) / 2, flying: map[stampKey]bool{}, allowed: 1}
}

// admit reports whether l's request may be pipelined; if so, it is counted in flight
// until finish. Otherwise admit first waits for the pipelined requests in flight.
func (p *pipeline) admit(svc *Service, l *jsonl.Line, ids *requestIDs) (stampKey, *flight, bool) {
	if p == nil {
		return stampKey{}, nil, false
	}
	k, ok := p.qualifies(svc, l, ids)
	if !ok {
		p.running.Wait()
		return stampKey{}, nil, false
	}
	p.makeRoom()
	f := &flight{sent: time.Now(), done: make(chan struct{})}
	p.queue = append(p.queue, f)
	p.peak = max(p.peak, len(p.queue))
	p.mu.Lock()
	p.flying[k] = true
	p.mu.Unlock()
	p.running.Add(1)
	return k, f, true
}

// makeRoom waits until fewer than allowed requests are in flight and the oldest has
// waited less than hold (the reader alone touches the queue).
func (p *pipeline) makeRoom() {
	for len(p.queue) > 0 {
		oldest := p.queue[0]
		select {
		case <-oldest.done:
			p.queue = p.queue[1:]
			continue
		default:
		}
		p.mu.Lock()
		allowed := int(p.allowed)
		p.mu.Unlock()
		if len(p.queue) < allowed && time.Since(oldest.sent) < p.hold {
			return
		}
		<-oldest.done
	}
}

func (p *pipeline) qualifies(svc *Service, l *jsonl.Line, ids *requestIDs) (stampKey, bool) {
	if ids == nil || l.Type != "pbft_request" {
		return stampKey{}, false
	}
	b := svc.Backend()
	msgID, ok := l.MsgIDInt()
	if b == nil || !b.InProcess() || !ok {
		return stampKey{}, false
	}
	if svc.replica(l.Dest) != b.Client().Primary() || len(b.Plan().Live) != len(svc.ids) {
		return stampKey{}, false
	}
	// A conflicting reuse of a msg_id is refused by stamp (Handle answers it); stamp
	// gives a retransmission its original's timestamp, the same on the second call.
	args, _, err := requestOf(l, msgID, ids)
	if err != nil {
		return stampKey{}, false
	}
	k := stampKey{args.Client, args.Timestamp}
	p.mu.Lock()
	defer p.mu.Unlock()
	return k, !p.flying[k]
}

// finish marks k answered.
func (p *pipeline) finish(k stampKey, f *flight) {
	took := time.Since(f.sent)
	p.mu.Lock()
	delete(p.flying, k)
	switch {
	case took < p.hold:
		p.allowed = min(p.allowed+1, float64(p.window))
	case took > p.hold*3/2:
		p.allowed = max(p.allowed/2, 1)
	}
	p.mu.Unlock()
	close(f.done)
	p.running.Done()
}
