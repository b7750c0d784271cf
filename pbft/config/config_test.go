package config

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestDefaultsAreValidAndMatchTheDesign(t *testing.T) {
	s := Default()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Cluster != "pbft" || s.CheckpointInterval != 128 || s.LogWindow != 256 || s.RequestTimeout != 4*time.Second || s.ClientID != "gateway" {
		t.Fatalf("defaults: %+v", s)
	}
	if p := s.Protocol(); p.ViewChangeTicks != 50 || p.StatusTicks != 10 {
		t.Fatalf("ticks: %+v", p)
	}
}

func TestLoadReadsEnvironment(t *testing.T) {
	t.Setenv("PBFT_NODE_IDS", "a,b,c,d")
	t.Setenv("PBFT_VIEW_CHANGE_TIMEOUT", "2s")
	t.Setenv("PBFT_FAULT", "silent")
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.NodeIDs) != 4 || s.NodeIDs[3] != "d" || s.ViewChangeTimeout != 2*time.Second || s.Fault != "silent" {
		t.Fatalf("%+v", s)
	}
}

func TestValidateRejects(t *testing.T) {
	for name, mutate := range map[string]func(*Settings){
		"log window not a multiple of K": func(s *Settings) { s.LogWindow = 200 },
		"window below 2K":                func(s *Settings) { s.LogWindow = 128 },
		"unknown fault":                  func(s *Settings) { s.Fault = "explode" },
		"cluster with a dot":             func(s *Settings) { s.Cluster = "a.b" },
		"timeout below a tick":           func(s *Settings) { s.ViewChangeTimeout = time.Millisecond },
		"bad log level":                  func(s *Settings) { s.LogLevel = "loud" },
		"zero batch":                     func(s *Settings) { s.BatchMax = 0 },
		"no stdio window":                func(s *Settings) { s.StdioWindow = 0 },
		"stdio window past the writer":   func(s *Settings) { s.StdioWindow = 257 },
		"join without an administrator":  func(s *Settings) { s.Join = true },
		"a replica as the administrator": func(s *Settings) { s.NodeIDs, s.AdminID = []string{"a", "b"}, "b" },
	} {
		s := Default()
		mutate(&s)
		if err := s.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	t.Setenv("PBFT_CHECKPOINT_INTERVAL", "many")
	if _, err := Load(); !errors.Is(err, ErrInvalid) {
		t.Errorf("unparsable variable: got %v", err)
	}
}

func TestNATSCredentialsFromAFile(t *testing.T) {
	s := Default()
	if opts, err := s.NATSOptions(); err != nil || opts != nil {
		t.Fatalf("no credentials: %v %v", opts, err)
	}
	dir := t.TempDir()
	path := dir + "/pw"
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.NATSUser, s.NATSPasswordFile = "replica-0", path
	if opts, err := s.NATSOptions(); err != nil || len(opts) != 1 {
		t.Fatalf("credentials: %d options, %v", len(opts), err)
	}
	for name, bad := range map[string]Settings{
		"user without file": {NATSUser: "replica-0"},
		"file without user": {NATSPasswordFile: path},
		"missing file":      {NATSUser: "replica-0", NATSPasswordFile: dir + "/none"},
	} {
		if _, err := bad.NATSOptions(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if err := os.WriteFile(path, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NATSOptions(); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty password file: err = %v", err)
	}
}
