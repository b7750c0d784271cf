package config

import (
	"errors"
	"os"
	"strings"
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

// TestBatchMaxFollowsTheMode: by default a pre-prepare holds up to 64 requests, except
// on stdio over the embedded cluster, where each request is ordered alone so that its
// answer's sequence number is its own; a batch size the user set is kept in every mode.
func TestBatchMaxFollowsTheMode(t *testing.T) {
	s := Default()
	external := s
	external.NATSURL = "nats://127.0.0.1:4222"
	set := s
	set.BatchMax = 16
	for _, c := range []struct {
		name string
		s    Settings
		want int
	}{
		{"default", s, 64},
		{"stdio, embedded", s.ForStdio(), 1},
		{"stdio, external replicas", external.ForStdio(), 64},
		{"stdio, set", set.ForStdio(), 16},
		{"set", set, 16},
	} {
		if got := c.s.Protocol().BatchMax; got != c.want {
			t.Errorf("%s: BatchMax %d, want %d", c.name, got, c.want)
		}
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
		"negative batch":                 func(s *Settings) { s.BatchMax = -1 },
		"negative max procs":             func(s *Settings) { s.MaxProcs = -1 },
		"negative gc heap":               func(s *Settings) { s.GCHeapMB = -1 },
		"gc heap past 1 TiB":             func(s *Settings) { s.GCHeapMB = 1<<20 + 1 },
		"no stdio window":                func(s *Settings) { s.StdioWindow = 0 },
		"stdio window past the writer":   func(s *Settings) { s.StdioWindow = 257 },
		"join without an administrator":  func(s *Settings) { s.Join = true },
		"a replica as the administrator": func(s *Settings) { s.NodeIDs, s.AdminID = []string{"a", "b"}, "b" },
		// Ids travel as NATS subject tokens.
		"node id with a dot":          func(s *Settings) { s.NodeID = "a.b" },
		"node ids with a wildcard":    func(s *Settings) { s.NodeIDs = []string{"n1", "n*"} },
		"node ids with an empty id":   func(s *Settings) { s.NodeIDs = []string{"n1", ""} },
		"node ids with a space":       func(s *Settings) { s.NodeIDs = []string{"n 1"} },
		"initial ids with a >":        func(s *Settings) { s.InitialIDs = []string{"n1", "n>"} },
		"administrator with a tab":    func(s *Settings) { s.AdminID = "ad\tmin" },
		"client with a control char":  func(s *Settings) { s.ClientID = "gw\x01" },
		"client id with invalid utf8": func(s *Settings) { s.ClientID = "gw\xff" },
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

// An id that is not one NATS subject token is refused at load with an error that names
// the variable and the id (the replica would otherwise look for a public key of a
// replica "a.b", and a client would wait on subjects nobody can publish to).
func TestLoadRefusesIDsThatAreNotSubjectTokens(t *testing.T) {
	for name, v := range map[string]string{"PBFT_NODE_IDS": "n1,a.b,n3,n4", "PBFT_NODE_ID": "n*", "PBFT_ADMIN_ID": "ad min",
		"PBFT_INITIAL_IDS": "n1,,n3", "PBFT_CLIENT_ID": "gw>"} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, v)
			_, err := Load()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "one NATS subject token") {
				t.Fatalf("%s=%q: %v", name, v, err)
			}
		})
	}
	t.Setenv("PBFT_NODE_IDS", "replica-0,replica-1,n_2,Ñ3")
	t.Setenv("PBFT_ADMIN_ID", "admin")
	if _, err := Load(); err != nil {
		t.Fatalf("valid ids: %v", err)
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

// One environment for every pod of a StatefulSet: PBFT_INITIAL_IDS makes the founders
// start from configuration 0 and every other replica join PBFT_NODE_IDS.
func TestInitialIDsDecideWhoJoins(t *testing.T) {
	t.Setenv("PBFT_INITIAL_IDS", "r0,r1,r2,r3")
	t.Setenv("PBFT_NODE_IDS", "r0,r1,r2,r3,r4,r5,r6")
	t.Setenv("PBFT_ADMIN_ID", "admin")
	for id, want := range map[string]struct {
		join bool
		ids  string
	}{
		"r0": {false, "r0,r1,r2,r3"},
		"r3": {false, "r0,r1,r2,r3"},
		"r4": {true, "r0,r1,r2,r3,r4,r5,r6"},
		"r6": {true, "r0,r1,r2,r3,r4,r5,r6"},
	} {
		t.Setenv("PBFT_NODE_ID", id)
		s, err := Load()
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if bool(s.Join) != want.join || strings.Join(s.NodeIDs, ",") != want.ids {
			t.Errorf("%s: join %v, PBFT_NODE_IDS %v; want %v, %s", id, s.Join, s.NodeIDs, want.join, want.ids)
		}
	}
	// PBFT_JOIN=on agrees with the decision for a replica outside PBFT_INITIAL_IDS.
	t.Setenv("PBFT_NODE_ID", "r5")
	t.Setenv("PBFT_JOIN", "on")
	if s, err := Load(); err != nil || !bool(s.Join) {
		t.Errorf("a joiner with PBFT_JOIN=on as well: join %v, %v", s.Join, err)
	}
	t.Setenv("PBFT_JOIN", "off")
	// The gateway (no PBFT_NODE_ID) keeps PBFT_NODE_IDS.
	t.Setenv("PBFT_NODE_ID", "")
	if s, err := Load(); err != nil || len(s.NodeIDs) != 7 || s.Join {
		t.Errorf("without PBFT_NODE_ID: %v, %v", s.NodeIDs, err)
	}
	for name, env := range map[string]map[string]string{
		"a replica in neither list": {"PBFT_NODE_ID": "r9"},
		"a founder told to join":    {"PBFT_NODE_ID": "r1", "PBFT_JOIN": "on"},
		"a joiner without an admin": {"PBFT_NODE_ID": "r4", "PBFT_ADMIN_ID": ""},
	} {
		for k, v := range env {
			t.Setenv(k, v)
		}
		if _, err := Load(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v", name, err)
		}
		t.Setenv("PBFT_JOIN", "off")
		t.Setenv("PBFT_ADMIN_ID", "admin")
	}
}
