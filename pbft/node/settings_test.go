package node

import (
	"testing"

	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft/config"
)

// PBFT_TRACE=on turns tracing on in the replica's config; PBFT_FAULT gives its behaviour.
func TestFromSettingsTrace(t *testing.T) {
	ids := []string{"n1"}
	keys, err := auth.GenerateKeyrings(ids, ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := config.Default()
	c, err := FromSettings(s, "n1", ids, keys["n1"], nil)
	if err != nil || c.Trace || c.Fault != FaultNone {
		t.Fatalf("default: Trace %v, Fault %q, %v", c.Trace, c.Fault, err)
	}
	s.Trace, s.Fault = true, "silent"
	c, err = FromSettings(s, "n1", ids, keys["n1"], nil)
	if err != nil || !c.Trace || c.Fault != FaultSilent {
		t.Fatalf("PBFT_TRACE=on PBFT_FAULT=silent: Trace %v, Fault %q, %v", c.Trace, c.Fault, err)
	}
	s.Fault = "wobbly"
	if _, err := FromSettings(s, "n1", ids, keys["n1"], nil); err == nil {
		t.Fatal("PBFT_FAULT=wobbly accepted")
	}
}
