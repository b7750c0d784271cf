package client

import (
	"context"
	"slices"

	"github.com/pbft-nats/pbft/pbft"
)

// Discover asks the members of the configuration the client follows which configuration
// is in force, and follows it if it is newer: the newest that f+1 of them report alike
// (one of them is correct, and a correct replica reports only a configuration that was
// installed). A client started after a reconfiguration, with the ids it was given, finds
// the membership that replaced them this way as long as f+1 of those ids still run and
// remember it; so does a running client that another client's reconfiguration left
// behind (learn).
func (c *Client) Discover(ctx context.Context) (pbft.Membership, error) {
	m, err := c.inForce(ctx)
	if err != nil {
		return pbft.Membership{}, err
	}
	c.follow(m)
	return m, nil
}

// inForce asks every member of the configuration the client follows for its
// configuration and returns the newest that f+1 of them report alike.
//
// Members report the configuration they run. A replica that left reports the
// configuration that replaced its own (it executed the change), whose members do not
// include it: its word counts, so a client whose members all left can still follow. A
// replica waiting to join reports the list it was given, which includes itself, and no
// number of those speaks for the configuration in force.
func (c *Client) inForce(ctx context.Context) (pbft.Membership, error) {
	_, ids := c.Configuration()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	answers := make(chan *pbft.Answer, len(ids))
	for _, id := range ids {
		wait := c.sendQuery(id, &pbft.Query{Op: pbft.OpInfo})
		go func() {
			a, _ := wait(ctx)
			answers <- a
		}()
	}
	votes := map[string]int{}
	need := pbft.NewQuorum(len(ids)).Weak()
	var best *pbft.Membership
	for range ids {
		a := <-answers
		if a == nil || len(a.Members) == 0 || a.NotMember && slices.Contains(a.Members, a.Replica) {
			continue
		}
		m := pbft.Membership{Conf: a.Configuration, Members: a.Members}
		k := string(pbft.EncodeMembership(m))
		if votes[k]++; votes[k] >= need && (best == nil || m.Conf > best.Conf) {
			best = &m
		}
	}
	if best == nil {
		return pbft.Membership{}, fail(ErrTimeout, "no %d of %v agree on the configuration in force within %v", need, ids, c.cfg.Timeout)
	}
	return *best, nil
}

// follow makes the client follow m unless it follows a newer configuration already
// (learnt or made meanwhile: never backwards), or m itself.
func (c *Client) follow(m pbft.Membership) {
	c.following.Lock()
	defer c.following.Unlock()
	if now := c.mem.Load(); m.Conf > now.conf || m.Conf == now.conf && !slices.Equal(m.Members, now.ids) {
		// Tag for the new members too; one whose key is missing still counts in the
		// quorum it belongs to, it just cannot check this client's requests.
		_ = c.keys.Load().Include(m.Members)
		c.setMembershipLocked(m.Conf, m.Members, nil)
	}
}

// followNewer reports a reply from a configuration newer than the one the client follows
// (another client reconfigured the replicas): the client cannot count it, knowing neither
// that configuration's members nor its quorum, so the reply is dropped and the client
// learns which configuration is in force. Once it follows that one, the replicas answer
// the retransmitted request again from their reply caches.
func (c *Client) followNewer(conf uint64) bool {
	if conf <= c.mem.Load().conf {
		return false
	}
	c.learn()
	return true
}

// learn runs Discover in the background, one at a time: a reply or an answer showed a
// newer configuration than the one the client follows, or a request stalls (its members
// may all have left).
func (c *Client) learn() {
	if !c.learning.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.learning.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
		defer cancel()
		_, _ = c.Discover(ctx)
	}()
}
