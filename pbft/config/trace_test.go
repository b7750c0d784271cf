package config

import (
	"errors"
	"testing"
)

// PBFT_TRACE is off by default, on when set so, and refuses what is neither on nor off
// (node.FromSettings passes it to every replica: TestFromSettingsTrace).
func TestTraceSetting(t *testing.T) {
	if Default().Trace {
		t.Fatal("tracing on by default")
	}
	t.Setenv("PBFT_TRACE", "on")
	s, err := Load()
	if err != nil || !s.Trace {
		t.Fatalf("PBFT_TRACE=on: %v %v", s.Trace, err)
	}
	t.Setenv("PBFT_TRACE", "sometimes")
	if _, err := Load(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("PBFT_TRACE=sometimes: %v", err)
	}
}
