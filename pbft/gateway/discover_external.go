package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/pbft-nats/pbft/pbft"
)

// learnConfiguration asks the external replicas, in the background, which configuration
// is in force, and follows it when it is newer than the one the client follows (the
// newest that f+1 of them report alike: one of them is correct). A gateway started after
// reconfigurations, with PBFT_NODE_IDS naming the members in force, knows the members but
// not their configuration's number, and replies count only in the configuration the
// client follows: read-only replies of another configuration are not counted at all, so
// every read would fall back to ordering. It tries every second until one answer
// (replicas may start after the gateway) or Close. It never goes back: a reconfiguration
// this gateway makes meanwhile (Reconfigure) holds x.follow.
func (x *External) learnConfiguration() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	x.stopLearning = func() {
		cancel()
		<-done
	}
	go func() {
		defer close(done)
		for {
			if m, ok := x.inForce(ctx); ok {
				x.follow.Lock()
				if conf, _ := x.client.Configuration(); m.Conf > conf {
					x.client.SetMembership(m.Conf, m.Members, nil) // Plan follows it
				}
				x.follow.Unlock()
				return
			}
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
}

// inForce asks every replica the client sends to which configuration is in force and
// returns the newest that f+1 of them report alike.
func (x *External) inForce(ctx context.Context) (pbft.Membership, bool) {
	_, ids := x.client.Configuration()
	ctx, cancel := context.WithTimeout(ctx, x.wait)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	votes := map[string]int{}
	need := pbft.NewQuorum(len(ids)).Weak()
	var best *pbft.Membership
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := x.client.Query(ctx, id, &pbft.Query{Op: pbft.OpInfo})
			if err != nil || len(a.Members) == 0 || a.NotMember {
				return // a joiner's or a leaver's list is not the configuration in force
			}
			m := pbft.Membership{Conf: a.Configuration, Members: a.Members}
			k := string(pbft.EncodeMembership(m))
			mu.Lock()
			defer mu.Unlock()
			if votes[k]++; votes[k] >= need && (best == nil || m.Conf > best.Conf) {
				best = &m
			}
		}()
	}
	wg.Wait()
	if best == nil {
		return pbft.Membership{}, false
	}
	return *best, true
}
