package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/node"
)

// ErrTimeout reports an answer that did not come in time.
var ErrTimeout = errors.New("gateway: timed out")

// Client is the PBFT client side of a gateway on the bus: it sends requests and queries to
// replicas and routes their answers and replies back to whoever waits for them.
type Client struct {
	id   string
	tr   bus.Transport
	keys *auth.Keyring

	nextID  atomic.Uint64
	mu      sync.Mutex
	queries map[uint64]chan *node.Answer
	replies map[replyKey]*ReplySet
}

type replyKey struct {
	client string
	t      uint64
}

// NewClient joins the bus as the gateway whose identity keys hold; connect builds the
// transport.
func NewClient(keys *auth.Keyring, connect func(bus.Handler) (bus.Transport, error)) (*Client, error) {
	c := &Client{id: keys.Self().ID, keys: keys, queries: map[uint64]chan *node.Answer{}, replies: map[replyKey]*ReplySet{}}
	tr, err := connect(c.receive)
	if err != nil {
		return nil, err
	}
	c.tr = tr
	return c, nil
}

// MaxOperation is the largest operation the gateway sends: half the bus's message
// limit. The largest message that carries a whole operation is the gateway's submit
// query (JSON, so base64: 4/3 of it); pre-prepares, view changes and replies carry at
// most one operation past their own bounds. Without a limit from the bus (in-memory
// transports), 1 MiB.
func (c *Client) MaxOperation() int {
	if t, ok := c.tr.(interface{ MaxPayload() int64 }); ok && t.MaxPayload() > 0 {
		return int(t.MaxPayload() / 2)
	}
	return 1 << 20
}

// ID is the gateway's identity on the bus.
func (c *Client) ID() string { return c.id }

// Close leaves the bus.
func (c *Client) Close() error { return c.tr.Close() }

func (c *Client) receive(m bus.Message) {
	data, err := c.keys.Open(m.From, m.Kind, m.Data)
	if err != nil {
		return // unauthenticated: not from a replica of this cluster
	}
	switch m.Kind {
	case node.KindAnswer:
		a, err := node.DecodeAnswer(data)
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
	case node.KindReplies:
		reps, err := node.DecodeReplies(data)
		if err != nil {
			return
		}
		for _, rep := range reps {
			if rep.Replica >= 0 {
				c.deliver(m.From, rep)
			}
		}
	}
}

func (c *Client) deliver(from string, rep *pbft.Reply) {
	c.mu.Lock()
	set := c.replies[replyKey{rep.Client, rep.Timestamp}]
	c.mu.Unlock()
	if set != nil {
		set.add(from, rep)
	}
}

// Query sends q to replica and waits for its answer until ctx ends.
func (c *Client) Query(ctx context.Context, replica string, q *node.Query) (*node.Answer, error) {
	q.ID = c.nextID.Add(1)
	ch := make(chan *node.Answer, 1)
	c.mu.Lock()
	c.queries[q.ID] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.queries, q.ID)
		c.mu.Unlock()
	}
	if err := c.tr.Send(replica, node.KindQuery, c.keys.Seal(replica, node.KindQuery, node.EncodeQuery(q))); err != nil {
		forget()
		return nil, err
	}
	select {
	case a := <-ch:
		return a, nil
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("%w: %s from %s", ErrTimeout, q.Op, replica)
	}
}

// Broadcast sends a request to every replica, as a PBFT client does when the primary
// seems not to order it.
func (c *Client) Broadcast(req *pbft.Request) error {
	kind := pbft.KindRequest.String()
	return c.tr.Broadcast(kind, c.keys.Seal("", kind, pbft.Marshal(req)))
}

// Send sends a request to one replica (the primary, normally).
func (c *Client) Send(replica string, req *pbft.Request) error {
	kind := pbft.KindRequest.String()
	return c.tr.Send(replica, kind, c.keys.Seal(replica, kind, pbft.Marshal(req)))
}

// NewRequest builds a request from this gateway with its authenticator: a tag for every
// replica, so that a primary relaying it cannot alter it unnoticed.
func (c *Client) NewRequest(client string, t uint64, op []byte) *pbft.Request {
	req := &pbft.Request{Gateway: c.id, Client: client, Timestamp: t, Op: op}
	req.Auth = c.keys.RequestTags(node.RequestDigest(req))
	return req
}

// ReplySet collects the replies of all replicas to one request.
type ReplySet struct {
	mu       sync.Mutex
	byRep    map[string]*pbft.Reply
	waiting  []chan struct{}
	watchers int      // guarded by Client.mu
	op       [32]byte // the operation's digest, guarded by Client.mu
}

// Watch starts collecting replies to (client, t) with operation op; call Unwatch when
// done. Watchers of the same request (a retransmission) share one set. Replies name no
// operation, so a request with another operation under an id being watched cannot be
// told apart: ok is false and nothing is watched.
func (c *Client) Watch(client string, t uint64, op []byte) (set *ReplySet, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := replyKey{client, t}
	d := sha256.Sum256(op)
	s := c.replies[k]
	if s == nil {
		s = &ReplySet{byRep: map[string]*pbft.Reply{}, op: d}
		c.replies[k] = s
	} else if s.op != d {
		return nil, false
	}
	s.watchers++
	return s, true
}

// Unwatch stops one watcher of (client, t).
func (c *Client) Unwatch(client string, t uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := replyKey{client, t}
	if s := c.replies[k]; s != nil {
		s.watchers--
		if s.watchers <= 0 {
			delete(c.replies, k)
		}
	}
}

func (s *ReplySet) add(from string, r *pbft.Reply) {
	s.mu.Lock()
	if _, ok := s.byRep[from]; !ok {
		s.byRep[from] = r
	}
	waiting := s.waiting
	s.waiting = nil
	s.mu.Unlock()
	for _, ch := range waiting {
		close(ch)
	}
}

// Changed returns a channel closed when the next reply arrives; each watcher asks anew.
func (s *ReplySet) Changed() <-chan struct{} {
	ch := make(chan struct{})
	s.mu.Lock()
	s.waiting = append(s.waiting, ch)
	s.mu.Unlock()
	return ch
}

// Result is the outcome the replies agree on.
type Result struct {
	Seq     uint64
	View    uint64
	Value   []byte
	Replies int // replies that match Value and Seq
	From    map[string]bool
}

// Best returns the largest group of matching replies (same sequence number and result),
// and the set of replicas that replied at all.
func (s *ReplySet) Best() (Result, map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	best, members := s.largestGroup()
	if best.Replies > 0 {
		best.From = make(map[string]bool, len(members))
		for _, from := range members {
			best.From[from] = true
		}
	}
	all := make(map[string]bool, len(s.byRep))
	for from := range s.byRep {
		all[from] = true
	}
	return best, all
}

// Agreed returns the largest group of matching replies once it has quorum members; the
// client's fast path, which needs neither the members nor who else replied.
func (s *ReplySet) Agreed(quorum int) (Result, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byRep) < quorum {
		return Result{}, false
	}
	best, _ := s.largestGroup()
	return best, best.Replies >= quorum
}

// largestGroup finds the largest group of replies with the same sequence number and
// result (ties go to the lower sequence number) and its members. There are at most n
// replies, so comparing pairs beats building maps.
func (s *ReplySet) largestGroup() (Result, []string) {
	var buf [16]string
	froms := buf[:0]
	for from := range s.byRep {
		froms = append(froms, from)
	}
	var best Result
	var members []string
	for i, from := range froms {
		r := s.byRep[from]
		group := []string{from}
		seen := false
		for j, other := range froms {
			o := s.byRep[other]
			if j == i || o.Seq != r.Seq || !bytes.Equal(o.Result, r.Result) {
				continue
			}
			if j < i {
				seen = true // counted with its first member already
				break
			}
			group = append(group, other)
		}
		if seen {
			continue
		}
		if len(group) > best.Replies || (len(group) == best.Replies && r.Seq < best.Seq) {
			best = Result{Seq: r.Seq, Value: r.Result, Replies: len(group)}
			members = group
			for _, m := range group {
				best.View = max(best.View, s.byRep[m].View)
			}
		}
	}
	best.Value = bytes.Clone(best.Value) // the reply's buffer stays the reply's
	return best, members
}
