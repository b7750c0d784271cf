// Package client is the PBFT client on the bus (Castro & Liskov §4.1): it sends a request
// to the primary, retransmits it to every replica when the answer takes too long, and
// votes on the replies (a quorum of matching ones decide the result, see Accept, so that
// reads on the read-only path, read.go, stay linearizable). It also asks replicas queries
// (where a request was ordered, a replica's status). A gateway answers its client
// protocol through it; it knows nothing of that protocol nor of which replicas are faulty.
package client

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
)

// Config is what a client needs to join a cluster.
type Config struct {
	// Keys hold the client's identity and the replicas' keys.
	Keys *auth.Keyring
	// Connect builds the transport; the client's handler receives what replicas send it.
	Connect func(bus.Handler) (bus.Transport, error)
	// Replicas are the cluster's replica ids in order: the primary of view v is
	// Replicas[v mod n]. Empty for a client that only asks queries.
	Replicas []string
	// Timeout bounds a request from its sending to its outcome.
	Timeout time.Duration
	// Retransmit is how long a request waits for its outcome before the client sends
	// it to every replica (RetransmitAfter).
	Retransmit time.Duration
}

// Client is a PBFT client on the bus: it sends requests and queries to replicas and
// routes their answers and replies back to whoever waits for them. It is safe for
// concurrent use.
type Client struct {
	id   string
	tr   bus.Transport
	conn *nats.Conn // the connection Connect made, closed with the client; nil for New
	keys atomic.Pointer[auth.Keyring]
	cfg  Config
	mem  atomic.Pointer[membership] // membership.go
	// following is held while the client changes the configuration it follows, so that
	// Discover never goes back to an older one (discover.go).
	following sync.Mutex
	// learning is set while the client asks, in the background, which configuration is
	// in force (learn).
	learning atomic.Bool

	nextID   atomic.Uint64
	lastView atomic.Uint64 // latest view seen, to guess the primary
	mu       sync.Mutex
	queries  map[uint64]chan *pbft.Answer
	replies  map[replyKey]*ReplySet
	batch    batcher // batch.go
	// clock ends the read-only path's waits and times retransmissions (clock.go).
	clock clock
}

type replyKey struct {
	client string
	t      uint64
}

// New joins the bus as the client whose identity cfg.Keys hold.
func New(cfg Config) (*Client, error) {
	c := &Client{id: cfg.Keys.Self().ID, cfg: cfg,
		queries: map[uint64]chan *pbft.Answer{}, replies: map[replyKey]*ReplySet{}}
	c.keys.Store(cfg.Keys)
	c.mem.Store(newMembership(0, cfg.Replicas, nil))
	tr, err := cfg.Connect(c.receive)
	if err != nil {
		return nil, err
	}
	c.tr = tr
	return c, nil
}

// MaxOperation is the largest operation the client sends: half the bus's message
// limit. The largest message that carries a whole operation is the gateway's submit
// query (JSON, so base64: 4/3 of it); pre-prepares, view changes and replies carry at
// most one operation past their own bounds. Without a limit from the bus (in-memory
// transports), 1 MiB.
func (c *Client) MaxOperation() int {
	if limit := c.busLimit(); limit > 0 {
		return int(limit / 2)
	}
	return 1 << 20
}

// busLimit is the bus's message limit in bytes, 0 if it states none.
func (c *Client) busLimit() int64 {
	if t, ok := c.tr.(interface{ MaxPayload() int64 }); ok {
		return max(t.MaxPayload(), 0)
	}
	return 0
}

// Accept is how many matching replies decide a result: a quorum, floor((n+f)/2)+1
// (pbft.Quorum.Commit), never fewer than f+1. f+1 would be enough for this request alone
// (one correct replica vouches for it), but a read answered by a quorum without being
// ordered is linearizable only if every write was accepted at a quorum as well: then
// the two quorums share a correct replica that executed the write.
//
// A conflict (pbft.ConflictResultFor: the request's id was ordered with another
// operation) needs a quorum too, although f+1 would do (one correct replica's word is
// enough, and a refusal writes nothing): one rule for every answer, and a margin against
// late replies to another request under the same id, of which only conflict answers
// name their operation (ReplySet.add).
func (c *Client) Accept() int { q := c.quorum(); return max(q.Commit(), q.Weak()) }

// ID is the client's identity on the bus.
func (c *Client) ID() string { return c.id }

// Close leaves the bus (and closes the NATS connection Connect made).
func (c *Client) Close() error {
	err := c.tr.Close()
	if c.conn != nil {
		c.conn.Close()
	}
	return err
}

func (c *Client) receive(m bus.Message) {
	data, err := c.keys.Load().Open(m.From, m.Kind, m.Data)
	if err != nil {
		return // unauthenticated: not from a replica of this cluster
	}
	switch m.Kind {
	case pbft.KindAnswer:
		a, err := pbft.DecodeAnswer(data)
		if err != nil || a.Replica != m.From {
			return
		}
		c.mu.Lock()
		ch := c.queries[a.ID]
		delete(c.queries, a.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- a
		}
	case pbft.KindReply.String():
		msg, err := pbft.Unmarshal(data)
		rep, ok := msg.(*pbft.Reply)
		if err != nil || !ok || rep.Replica < 0 {
			return
		}
		c.deliver(m.From, rep)
	case pbft.KindReplies:
		reps, err := pbft.DecodeReplies(data)
		if err != nil {
			return
		}
		c.deliverAll(m.From, reps)
	}
}

// deliverAll is deliver for the replies of one message (a replica's replies to one batch,
// tens of them under load): their sets are looked up under one hold of c.mu, which every
// request's Watch and Unwatch take as well, instead of one per reply.
func (c *Client) deliverAll(from string, reps []*pbft.Reply) {
	const chunk = 64
	var buf [chunk]*ReplySet
	for len(reps) > 0 {
		part := reps[:min(len(reps), chunk)]
		reps = reps[len(part):]
		sets := buf[:len(part)]
		c.mu.Lock()
		for i, rep := range part {
			sets[i] = c.replies[replyKey{rep.Client, rep.Timestamp}]
		}
		c.mu.Unlock()
		for i, rep := range part {
			if rep.Replica < 0 || c.followNewer(rep.Conf) || sets[i] == nil {
				continue
			}
			sets[i].add(from, rep)
		}
		clear(sets)
	}
}

func (c *Client) deliver(from string, rep *pbft.Reply) {
	if c.followNewer(rep.Conf) {
		return
	}
	c.mu.Lock()
	set := c.replies[replyKey{rep.Client, rep.Timestamp}]
	c.mu.Unlock()
	if set != nil {
		set.add(from, rep)
	}
}

// Query sends q to replica and waits for its answer until ctx ends. An answer that shows
// an active view newer than any seen moves the client's guess of the primary.
func (c *Client) Query(ctx context.Context, replica string, q *pbft.Query) (*pbft.Answer, error) {
	return c.sendQuery(replica, q)(ctx)
}

// sendQuery sends q to replica now and returns the wait for its answer, so that a caller
// can keep the order of its queries on the bus and wait for them elsewhere.
func (c *Client) sendQuery(replica string, q *pbft.Query) func(context.Context) (*pbft.Answer, error) {
	q.ID = c.nextID.Add(1)
	ch := make(chan *pbft.Answer, 1)
	c.mu.Lock()
	c.queries[q.ID] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.queries, q.ID)
		c.mu.Unlock()
	}
	if err := c.tr.Send(replica, pbft.KindQuery, c.keys.Load().Seal(replica, pbft.KindQuery, pbft.EncodeQuery(q))); err != nil {
		forget()
		return func(context.Context) (*pbft.Answer, error) { return nil, err }
	}
	return func(ctx context.Context) (*pbft.Answer, error) {
		select {
		case a := <-ch:
			if a.ViewActive {
				c.NoteView(a.View)
			}
			c.followNewer(a.Configuration) // a replica that left, say, names a newer one
			return a, nil
		case <-ctx.Done():
			forget()
			return nil, fmt.Errorf("%w: %s from %s", ErrTimeout, q.Op, replica)
		}
	}
}

// Broadcast sends a request to every replica, as a PBFT client does when the primary
// seems not to order it.
func (c *Client) Broadcast(req *pbft.Request) error {
	kind := pbft.KindRequest.String()
	return c.tr.Broadcast(kind, c.keys.Load().Seal("", kind, pbft.Marshal(req)))
}

// Send sends a request to one replica (the primary, normally).
func (c *Client) Send(replica string, req *pbft.Request) error {
	kind := pbft.KindRequest.String()
	return c.tr.Send(replica, kind, c.keys.Load().Seal(replica, kind, pbft.Marshal(req)))
}

// NewRequest builds a request from this client with its authenticator: a tag for every
// replica, so that a primary relaying it cannot alter it unnoticed.
func (c *Client) NewRequest(client string, t uint64, op []byte) *pbft.Request {
	req := &pbft.Request{Gateway: c.id, Client: client, Timestamp: t, Op: op}
	req.Auth = c.keys.Load().RequestTags(pbft.RequestDigest(req))
	return req
}

// NoteView raises the latest view the client has seen, which names the primary it sends
// requests to.
func (c *Client) NoteView(v uint64) { storeMax(&c.lastView, v) }

// Primary is the primary of the latest view seen, or "" when the client knows no replicas.
func (c *Client) Primary() string {
	m := c.mem.Load()
	if len(m.ids) == 0 {
		return ""
	}
	return m.ids[m.q.Primary(c.lastView.Load())]
}

// storeMax sets v to x if x is higher.
func storeMax(v *atomic.Uint64, x uint64) {
	for {
		cur := v.Load()
		if x <= cur || v.CompareAndSwap(cur, x) {
			return
		}
	}
}
