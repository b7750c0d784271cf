package config

import (
	"errors"
	"testing"

	"github.com/pbft-nats/pbft/bus/auth"
)

// PBFT_TRACE is off by default, turns tracing on in every replica's node config, and
// refuses what is neither on nor off.
func TestTraceSetting(t *testing.T) {
	if Default().Trace {
		t.Fatal("tracing on by default")
	}
	t.Setenv("PBFT_TRACE", "on")
	s, err := Load()
	if err != nil || !s.Trace {
		t.Fatalf("PBFT_TRACE=on: %v %v", s.Trace, err)
	}
	ids := []string{"n1"}
	keys, err := auth.GenerateKeyrings(ids, ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Node("n1", ids, keys["n1"], nil)
	if err != nil || !c.Trace {
		t.Fatalf("node config Trace = %v, %v", c.Trace, err)
	}
	t.Setenv("PBFT_TRACE", "sometimes")
	if _, err := Load(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("PBFT_TRACE=sometimes: %v", err)
	}
}
