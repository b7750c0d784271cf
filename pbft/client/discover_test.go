package client_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/node"
)

// Discover counts only members: replicas waiting to join a membership (not members yet)
// report the list they were given, and f+1 of them agreeing must not pass for the
// configuration in force. Here the client asks seven ids: r1..r4 run configuration 0,
// r5..r7 wait to join a membership of their own (three answers, f+1 of seven).
func TestDiscoverCountsOnlyMembers(t *testing.T) {
	founders := []string{"r1", "r2", "r3", "r4"}
	c := startCluster(t, 7, 5*time.Second, func(cfg *node.Config) {
		cfg.Protocol.Admin = "c"
		if slices.Contains(founders, cfg.ID) {
			cfg.NodeIDs = founders
			return
		}
		cfg.NodeIDs, cfg.Join = []string{"r5", "r6", "r7", "r1"}, true
	})
	for range 5 {
		m, err := c.client.Discover(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if m.Conf != 0 || !slices.Equal(m.Members, founders) {
			t.Fatalf("Discover found configuration %d with %v, want 0 with %v", m.Conf, m.Members, founders)
		}
	}
}
