package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pbft-nats/pbft/pbft"
)

// ErrRefused: the replicas executed a reconfiguration to a refusal (its sender is not
// their administrator, it names a configuration no longer in force, another is under
// way); nothing changed.
var ErrRefused = errors.New("client: reconfiguration refused")

// Reconfiguration is the outcome of Reconfigure.
type Reconfiguration struct {
	// Seq is the reconfiguration's sequence number.
	Seq uint64
	// Membership is the configuration now in force.
	Membership pbft.Membership
	// Replies is how many replicas of the ended configuration agreed on it.
	Replies int
	// Installed lists the members that reported running it before Reconfigure returned
	// (at most the request timeout after the result).
	Installed []string
}

// Reconfigure changes the membership of replicas run elsewhere to next (ids in rotation
// order). The client's identity must be the replicas' administrator (PBFT_ADMIN_ID):
// anyone else's reconfiguration executes to a refusal (ErrRefused). It learns the
// configuration in force from the replicas (Discover), refuses (pbft.ErrNoProgress,
// sending nothing) a membership of which fewer than its quorum answer a query (joiners
// must already run), tags the request for the new ids
// too (their keys come from the keys directory: auth.Keyring.Include), sends it to the
// joiners, which wait for it (PBFT_JOIN), then orders it like any request (r.Op is set
// here), follows the new membership, and waits, within the request timeout, until its
// members report running it.
func (c *Client) Reconfigure(ctx context.Context, r Request, next []string) (Reconfiguration, error) {
	if err := pbft.ValidateMembers(next); err != nil {
		return Reconfiguration{}, err
	}
	if slices.Contains(next, c.id) {
		return Reconfiguration{}, fmt.Errorf("%w: %q is this client's id, not a replica's", pbft.ErrMembership, c.id)
	}
	cur, err := c.Discover(ctx)
	if err != nil {
		return Reconfiguration{}, err
	}
	live := c.probe(ctx, next)
	if need := pbft.NewQuorum(len(next)).Commit(); len(live) < need {
		return Reconfiguration{}, fmt.Errorf("%w: %d of %v answer (%v), its quorum is %d; start the joining replicas first",
			pbft.ErrNoProgress, len(live), next, live, need)
	}
	if err := c.keys.Load().Include(append(slices.Clone(cur.Members), next...)); err != nil {
		return Reconfiguration{}, fmt.Errorf("%w: %v", pbft.ErrMembership, err)
	}
	r.Op = pbft.ReconfigOp(cur, next)
	req, err := c.build(r)
	if err != nil {
		return Reconfiguration{}, err
	}
	c.sendJoiners(req, cur.Members, next)
	res, err := c.Invoke(ctx, r)
	if err != nil {
		return Reconfiguration{}, err
	}
	m, ok := pbft.DecodeReconfigResult(res.Value)
	if !ok {
		why := strings.TrimPrefix(string(res.Value), pbft.ReconfigRefusedPrefix)
		return Reconfiguration{}, fail(ErrRefused, "the replicas refused the reconfiguration: %s", why)
	}
	c.SetMembership(m.Conf, m.Members, nil)
	c.sendJoiners(req, cur.Members, next) // a joiner that started late still learns of it
	return Reconfiguration{Seq: res.Seq, Membership: m, Replies: res.Replies, Installed: c.awaitMembers(ctx, m)}, nil
}

// sendJoiners sends the reconfiguration to the ids of next that are not in cur: they
// learn from it which configuration they join and whom to fetch its state from.
func (c *Client) sendJoiners(req *pbft.Request, cur, next []string) {
	for _, id := range next {
		if !slices.Contains(cur, id) {
			_ = c.Send(id, req)
		}
	}
}

// awaitMembers waits, within the request timeout, until each member of m reports
// running it; it returns those that did, in m's order.
func (c *Client) awaitMembers(ctx context.Context, m pbft.Membership) []string {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	ok := make([]bool, len(m.Members))
	done := make(chan struct{}, len(m.Members))
	for i, id := range m.Members {
		go func() {
			defer func() { done <- struct{}{} }()
			a, err := c.Query(ctx, id, &pbft.Query{Op: pbft.OpInfo, Wait: &pbft.Wait{MinConfiguration: m.Conf},
				WaitMillis: int(c.cfg.Timeout / time.Millisecond)})
			ok[i] = err == nil && a.Configuration >= m.Conf && !a.NotMember
		}()
	}
	for range m.Members {
		<-done
	}
	var out []string
	for i, id := range m.Members {
		if ok[i] {
			out = append(out, id)
		}
	}
	return out
}

// probeWait bounds how long Reconfigure waits for each replica of the new membership to
// answer a query before it counts it as not running.
const probeWait = time.Second

// probe asks each of ids for its status and returns those that answered within
// probeWait, in ids' order: running replicas (a joiner waiting for its admission answers
// too). A replica whose key the client lacks cannot be asked, and counts as not running.
func (c *Client) probe(ctx context.Context, ids []string) []string {
	ctx, cancel := context.WithTimeout(ctx, min(probeWait, c.cfg.Timeout))
	defer cancel()
	ok := make([]bool, len(ids))
	done := make(chan struct{}, len(ids))
	for i, id := range ids {
		wait := c.sendQuery(id, &pbft.Query{Op: pbft.OpInfo})
		go func() {
			_, err := wait(ctx)
			ok[i] = err == nil
			done <- struct{}{}
		}()
	}
	for range ids {
		<-done
	}
	var out []string
	for i, id := range ids {
		if ok[i] {
			out = append(out, id)
		}
	}
	return out
}
