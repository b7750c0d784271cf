package embedded

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"

	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/node"
)

// Reconfigure changes the membership to next through the protocol: it refuses (wrapping
// pbft.ErrNoProgress, changing nothing) a membership with fewer than its quorum of live
// replicas (new ones count as live, faulty ones not); it starts the joining replicas with
// keys every replica knows, orders req (the administrator's reconfiguration, its op
// filled in here), follows the new membership, waits until every live member installed
// it, then stops the replicas that left. The caller submits nothing meanwhile.
// It returns the reconfiguration's sequence number and the membership now in force.
func (e *Cluster) Reconfigure(ctx context.Context, req client.Request, next []string) (uint64, pbft.Membership, error) {
	e.reconfMu.Lock()
	defer e.reconfMu.Unlock()
	conf, cur := e.client.Configuration()
	if err := pbft.ValidateMembers(next); err != nil {
		return 0, pbft.Membership{}, err
	}
	e.mu.Lock()
	live := 0
	for _, id := range next {
		if f, ok := e.faults[id]; !slices.Contains(cur, id) || !ok || f == node.FaultNone {
			live++
		}
	}
	e.mu.Unlock()
	if need := pbft.NewQuorum(len(next)).Commit(); live < need {
		return 0, pbft.Membership{}, fmt.Errorf("%w: %d live of %d, its quorum is %d", pbft.ErrNoProgress, live, len(next), need)
	}
	if slices.Contains(next, e.settings.ClientID) {
		return 0, pbft.Membership{}, fmt.Errorf("%w: %q is the gateway's id", pbft.ErrMembership, e.settings.ClientID)
	}
	if err := e.growKeys(next); err != nil {
		return 0, pbft.Membership{}, err
	}
	from := &pbft.Membership{Conf: conf, Members: slices.Clone(cur)}
	for _, id := range next {
		if slices.Contains(cur, id) {
			continue
		}
		e.stopReplica(id) // one that left before comes back afresh
		if err := e.startReplica(id, next, conf+1, from); err != nil {
			return 0, pbft.Membership{}, err
		}
	}
	req.Op = pbft.ReconfigOp(pbft.Membership{Conf: conf, Members: cur}, next)
	res, err := e.client.Invoke(ctx, req)
	if err != nil {
		return 0, pbft.Membership{}, err
	}
	m, ok := pbft.DecodeReconfigResult(res.Value)
	if !ok {
		return 0, pbft.Membership{}, fmt.Errorf("%w: the replicas refused: %q", pbft.ErrMembership, res.Value)
	}
	e.mu.Lock()
	e.ids = slices.Clone(m.Members)
	e.mu.Unlock()
	e.client.SetMembership(m.Conf, m.Members, nil)
	e.awaitInstalled(ctx, m)
	for _, id := range cur {
		if !slices.Contains(m.Members, id) {
			e.stopReplica(id)
		}
	}
	return res.Seq, m, nil
}

// awaitInstalled waits (within the request timeout) until every live member of m runs
// configuration m.Conf.
func (e *Cluster) awaitInstalled(ctx context.Context, m pbft.Membership) {
	plan := e.Plan()
	wait := e.settings.RequestTimeout
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	done := make(chan struct{}, len(plan.Live))
	for _, id := range plan.Live {
		go func() {
			_, _ = e.client.Query(ctx, id, &pbft.Query{Op: pbft.OpInfo,
				Wait: &pbft.Wait{MinConfiguration: m.Conf}, WaitMillis: int(wait / time.Millisecond)})
			done <- struct{}{}
		}()
	}
	for range plan.Live {
		<-done
	}
}

// growKeys makes sure every replica id of next has keys the others know. Request
// authenticators list one tag per replica of the keyrings, in one order every process
// shares, so new ids are appended to that order (ids that left stay in it) and every
// keyring is built again from the same identities.
func (e *Cluster) growKeys(next []string) error {
	var added []string
	for _, id := range next {
		if !slices.Contains(e.universe, id) {
			added = append(added, id)
		}
	}
	if len(added) == 0 {
		return nil
	}
	idents := map[string]*auth.Identity{}
	pubs := map[string]ed25519.PublicKey{}
	for id, k := range e.keys {
		idents[id], pubs[id] = k.Self(), k.Self().Public()
	}
	for _, id := range added {
		ident, err := auth.Generate(id)
		if err != nil {
			return err
		}
		idents[id], pubs[id] = ident, ident.Public()
	}
	universe := append(slices.Clone(e.universe), added...)
	epoch := uint64(time.Now().UnixNano())
	keys := make(map[string]*auth.Keyring, len(idents))
	for id, ident := range idents {
		k, err := auth.NewKeyring(ident, universe, pubs, epoch)
		if err != nil {
			return err
		}
		keys[id] = k
	}
	e.mu.Lock()
	e.keys, e.universe = keys, universe
	running := make(map[string]*node.Node, len(e.stops))
	for id := range e.stops {
		running[id] = e.nodes[id]
	}
	e.mu.Unlock()
	for id, n := range running {
		n.SetKeys(keys[id])
	}
	conf, ids := e.client.Configuration()
	e.client.SetMembership(conf, ids, keys[e.settings.ClientID])
	return nil
}

// stopReplica stops replica id if it runs, and waits until it has.
func (e *Cluster) stopReplica(id string) {
	e.mu.Lock()
	stop := e.stops[id]
	delete(e.stops, id)
	e.mu.Unlock()
	if stop != nil {
		stop()
	}
}
