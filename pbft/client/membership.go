package client

import (
	"slices"

	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
)

// membership is the configuration the client sends to, and the one before it: replies
// are counted in the quorum of the configuration that sent them (pbft.Reply.Conf),
// never mixing members of two.
type membership struct {
	conf uint64
	ids  []string
	q    pbft.Quorum
	prev *membership
}

func newMembership(conf uint64, ids []string, prev *membership) *membership {
	m := &membership{conf: conf, ids: slices.Clone(ids), q: pbft.NewQuorum(max(len(ids), 1))}
	if prev != nil {
		p := *prev
		p.prev = nil
		m.prev = &p
	}
	return m
}

// SetMembership makes the client follow a reconfiguration: it sends to ids, the members
// of configuration conf, counts their replies in conf's quorum (and the replies of the
// configuration before in that one's), and authenticates with keys (nil keeps its own).
func (c *Client) SetMembership(conf uint64, ids []string, keys *auth.Keyring) {
	c.following.Lock()
	defer c.following.Unlock()
	c.setMembershipLocked(conf, ids, keys)
}

func (c *Client) setMembershipLocked(conf uint64, ids []string, keys *auth.Keyring) {
	if keys != nil {
		c.keys.Store(keys)
	}
	old := c.mem.Load()
	if old.conf == conf {
		c.mem.Store(newMembership(conf, ids, old.prev))
		return
	}
	c.mem.Store(newMembership(conf, ids, old))
	c.lastView.Store(0) // views count within a configuration
}

// Configuration returns the configuration the client follows and its members.
func (c *Client) Configuration() (uint64, []string) {
	m := c.mem.Load()
	return m.conf, slices.Clone(m.ids)
}

func (c *Client) quorum() pbft.Quorum { return c.mem.Load().q }

func (c *Client) replicas() []string { return c.mem.Load().ids }

// quorumOf is the quorum (Accept) of configuration conf, if the client knows it.
func (c *Client) quorumOf(conf uint64) (int, bool) {
	m := c.mem.Load()
	for ; m != nil; m = m.prev {
		if m.conf == conf {
			return max(m.q.Commit(), m.q.Weak()), true
		}
	}
	return 0, false
}

// leastAccept is the fewest matching replies that can decide a result: the smallest
// quorum (Accept) of the configurations whose replies count.
func (c *Client) leastAccept() int {
	m := c.mem.Load()
	least := max(m.q.Commit(), m.q.Weak())
	for ; m != nil; m = m.prev {
		least = min(least, max(m.q.Commit(), m.q.Weak()))
	}
	return least
}

// acceptOf is how many replies like best decide a result: the quorum of the
// configuration that sent them, else (no replies yet) of the one the client follows.
func (c *Client) acceptOf(best Result) int {
	if best.Replies > 0 {
		if q, ok := c.quorumOf(best.Conf); ok {
			return q
		}
	}
	return c.Accept()
}
