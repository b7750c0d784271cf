package gateway

import (
	"context"
	"time"
)

// learnConfiguration asks the external replicas, in the background, which configuration
// is in force, and follows it (client.Discover: the newest that f+1 of them report
// alike). A gateway started after reconfigurations, with PBFT_NODE_IDS naming the
// members in force, knows the members but not their configuration's number, and replies
// count only in the configuration the client follows: read-only replies of another
// configuration are not counted at all, so every read would fall back to ordering.
// It tries every second until one answer (replicas may start after the gateway) or
// Close.
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
			if m, err := x.client.Discover(ctx); err == nil {
				x.setPolicy(m.Members)
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
