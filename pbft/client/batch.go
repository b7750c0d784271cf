package client

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/pbft-nats/pbft/pbft"
)

// Request batching: many goroutines share one client (a gateway serves all its clients
// through one), and each request sent alone costs a bus message, an envelope MAC and, at
// every replica, an envelope check and an inbox event. So requests are queued per
// destination, and whoever finds the queue's sender idle becomes the sender: it sends
// what is queued, then what was queued meanwhile, until the queue is empty. A lone
// ordered request goes out at once, on its own (pbft.KindRequest); requests that arrive
// while a send is under way go together in one pbft.KindRequests message. There is no
// timer: batches fill only because sending takes time.
//
// Ordered requests keep their authenticators in a batch: the primary relays them to the
// backups in a pre-prepare, where each backup checks its own tag. Read-only requests are
// never relayed, so they carry none: they always travel in a pbft.KindRequests message
// (of one, when alone) broadcast to every replica, whose envelope has a tag for each
// replica, made with the key it shares with this gateway, and so authenticates every
// field of each read (the read-only flag included). A batch of reads costs one bus
// message and n MACs, instead of n messages and n MACs per read.

// maxBatchBytes bounds the requests in one batch (their operations, names and
// authenticators), well under the bus's message limit; a bus that takes less gets
// batches of half its limit (batchBytes).
const maxBatchBytes = 256 << 10

// batchBytes bounds the requests in one message sent on c's bus.
func (c *Client) batchBytes() int {
	if limit := c.busLimit(); limit > 0 {
		return int(min(maxBatchBytes, limit/2))
	}
	return maxBatchBytes
}

// everyReplica is the destination of requests sent to every replica.
const everyReplica = ""

type batcher struct {
	mu     sync.Mutex
	queues map[string]*sendQueue
	// sends and sent count the sends of queued requests (one per destination, a
	// broadcast once) and the requests they carried: their ratio is the mean batch.
	sends, sent atomic.Uint64
}

// SendStats is what the client's send queue sent since the client started.
type SendStats struct {
	Sends    uint64 // sends of queued requests: one per destination, a broadcast once
	Requests uint64 // requests they carried
}

// SendStats reports how many sends carried how many requests: how well concurrent
// requests share a message (a diagnostic for load tests).
func (c *Client) SendStats() SendStats {
	return SendStats{Sends: c.batch.sends.Load(), Requests: c.batch.sent.Load()}
}

// sendQueue holds the requests waiting for one destination.
type sendQueue struct {
	reqs  []*pbft.Request
	spare []*pbft.Request // the previous batch's slice, reused
	busy  bool            // a goroutine is sending this queue's batches
	buf   []byte          // the encoded batch, reused by whoever is sending
	env   []byte          // its envelope, likewise (the transport copies what it sends)
}

// enqueue sends reqs to replica to (everyReplica: to every replica), in their order,
// alone or in a batch with others queued for the same destination. It returns the error
// of the send that carried them when the caller sent it; requests sent by another
// caller's send are reported as sent (a lost request is what retransmission and the
// ordered fallback are for).
func (c *Client) enqueue(to string, reqs ...*pbft.Request) error {
	b := &c.batch
	b.mu.Lock()
	if b.queues == nil {
		b.queues = map[string]*sendQueue{}
	}
	q := b.queues[to]
	if q == nil {
		q = &sendQueue{}
		b.queues[to] = q
	}
	q.reqs = append(q.reqs, reqs...)
	if q.busy {
		b.mu.Unlock()
		return nil
	}
	q.busy = true
	b.mu.Unlock()
	// Yield once: callers already runnable (woken by the same batch of replies, say) join
	// this batch. With nothing else to run this returns at once: no delay for a lone request.
	runtime.Gosched()
	b.mu.Lock()
	var err error
	for first := true; len(q.reqs) > 0; first = false {
		batch := q.reqs
		q.reqs = q.spare[:0]
		b.mu.Unlock()
		e := c.sendBatch(to, batch, q)
		if first {
			err = e
		}
		clear(batch)
		b.mu.Lock()
		q.spare = batch[:0]
	}
	q.busy = false
	b.mu.Unlock()
	return err
}

// sendBatch sends reqs to to in messages of at most about batchBytes and
// pbft.MaxRequestsPerMessage requests (a larger request goes alone); q's buffer is the
// caller's while its queue is busy.
func (c *Client) sendBatch(to string, reqs []*pbft.Request, q *sendQueue) error {
	var err error
	most := c.batchBytes()
	for len(reqs) > 0 {
		k, size := 0, 0
		for k < len(reqs) && k < pbft.MaxRequestsPerMessage && (k == 0 || size+pbft.RequestSize(reqs[k]) <= most) {
			size += pbft.RequestSize(reqs[k])
			k++
		}
		if e := c.sendRequests(to, reqs[:k], q); e != nil && err == nil {
			err = e
		}
		reqs = reqs[k:]
	}
	return err
}

func (c *Client) sendRequests(to string, reqs []*pbft.Request, q *sendQueue) error {
	c.batch.sends.Add(1)
	c.batch.sent.Add(uint64(len(reqs)))
	keys := c.keys.Load()
	if to == everyReplica {
		// Read-only requests, even one alone: one message to every replica, whose envelope
		// carries a tag for each and authenticates every request in it (batch.go's notes),
		// so no request needs tags of its own, and the bus takes one message, not n.
		q.buf = pbft.AppendRequests(q.buf[:0], reqs)
		q.env = keys.AppendSeal(q.env[:0], "", pbft.KindRequests, q.buf)
		return c.tr.Broadcast(pbft.KindRequests, q.env)
	}
	if len(reqs) == 1 {
		// As Send, in the queue's buffers.
		kind := pbft.KindRequest.String()
		q.buf = pbft.AppendMessage(q.buf[:0], reqs[0])
		q.env = keys.AppendSeal(q.env[:0], to, kind, q.buf)
		return c.tr.Send(to, kind, q.env)
	}
	q.buf = pbft.AppendRequests(q.buf[:0], reqs)
	q.env = keys.AppendSeal(q.env[:0], to, pbft.KindRequests, q.buf)
	return c.tr.Send(to, pbft.KindRequests, q.env)
}
