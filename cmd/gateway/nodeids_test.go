package main

import (
	"strings"
	"testing"

	"github.com/pbft-nats/pbft/pbft/config"
)

// Against external NATS the gateway starts no replicas, so it must be told their ids.
func TestExternalModeRequiresNodeIDs(t *testing.T) {
	s := config.Default()
	s.NATSURL = "nats://127.0.0.1:4222"
	err := requireNodeIDs(s, "network mode")
	if err == nil || !strings.Contains(err.Error(), "PBFT_NODE_IDS") || !strings.Contains(err.Error(), "PBFT_NATS_URL") {
		t.Fatalf("external without PBFT_NODE_IDS: %v", err)
	}
	s.NodeIDs = []string{"a", "b", "c", "d"}
	if err := requireNodeIDs(s, "network mode"); err != nil {
		t.Fatalf("external with PBFT_NODE_IDS: %v", err)
	}
	s.NATSURL, s.NodeIDs = "", nil
	if err := requireNodeIDs(s, "network mode"); err != nil {
		t.Fatalf("embedded (n1..n4 by default): %v", err)
	}
}
