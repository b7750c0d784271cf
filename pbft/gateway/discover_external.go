package gateway

import (
	"context"
	"time"
)

// followInterval is how often an external gateway asks the replicas which configuration
// is in force.
const followInterval = time.Second

// learnConfiguration asks the external replicas, every followInterval until Close, which
// configuration is in force (client.Discover: the newest that f+1 members of the
// configuration the client follows report alike, followed only if newer).
//
// At start: a gateway started after reconfigurations, with PBFT_NODE_IDS naming the
// members in force, knows the members but not their configuration's number, and replies
// count only in the configuration the client follows (read-only replies of another are
// not counted at all, so every read would fall back to ordering); replicas may start
// after the gateway.
//
// Later: the client follows a reconfiguration made elsewhere by itself once replies or
// answers show it, but the request that shows it was sent without a tag for the joined
// replicas, which cannot authenticate it in the pre-prepare and so execute nothing more
// until they fetch a later checkpoint. Asking each second makes the gateway follow a
// reconfiguration before its next request in all but that second.
func (x *External) learnConfiguration() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	x.stopLearning = func() {
		cancel()
		<-done
	}
	go func() {
		defer close(done)
		t := time.NewTicker(followInterval)
		defer t.Stop()
		for {
			_, _ = x.client.Discover(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}
