package gateway

import (
	"sync"

	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// pipeline lets a pbft_request line go on before the requests of the lines before it are
// ordered (PBFT_STDIO_WINDOW of them at most), so that a stream of requests is not paced
// by one round trip per line.
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
	window  chan struct{} // a token per request in flight
	running sync.WaitGroup
	mu      sync.Mutex
	flying  map[stampKey]bool // (client, timestamp) of the requests in flight
	peak    int               // most requests in flight at once (read by tests after Run)
}

type stampKey struct {
	client string
	ts     uint64
}

func newPipeline(window int) *pipeline {
	if window <= 1 {
		return nil
	}
	return &pipeline{window: make(chan struct{}, window), flying: map[stampKey]bool{}}
}

// admit reports whether l's request may be pipelined; if so, it has taken a window token,
// which finish returns. Otherwise it waits for the pipelined requests in flight.
func (p *pipeline) admit(svc *Service, l *jsonl.Line, ids *requestIDs) (stampKey, bool) {
	if p == nil {
		return stampKey{}, false
	}
	if k, ok := p.qualifies(svc, l, ids); ok {
		p.window <- struct{}{}
		p.peak = max(p.peak, len(p.window))
		p.mu.Lock()
		p.flying[k] = true
		p.mu.Unlock()
		p.running.Add(1)
		return k, true
	}
	p.running.Wait()
	return stampKey{}, false
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
func (p *pipeline) finish(k stampKey) {
	p.mu.Lock()
	delete(p.flying, k)
	p.mu.Unlock()
	<-p.window
	p.running.Done()
}
