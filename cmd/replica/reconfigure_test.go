package main

import (
	"strings"
	"testing"
)

// reconfigure -h prints its usage; a missing list, a bad list or missing settings are
// clear errors (exit 1) before anything is sent.
func TestReconfigureUsageAndErrors(t *testing.T) {
	for _, args := range [][]string{{"reconfigure", "-h"}, {"reconfigure", "--help"}, {"reconfigure", "help"}} {
		code, out, errOut := runMain(t, nil, args...)
		if code != 0 || !strings.HasPrefix(out, "usage: replica reconfigure") || !strings.Contains(out, "PBFT_ADMIN_ID") || !strings.Contains(out, "-timeout") {
			t.Errorf("replica %v: exit %d, stderr %q, stdout:\n%s", args, code, errOut, out)
		}
	}
	code, out, _ := runMain(t, nil, "-h")
	if code != 0 || !strings.Contains(out, "\n  reconfigure ") {
		t.Errorf("replica -h does not list reconfigure:\n%s", out)
	}
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"reconfigure"}, "the new membership"},
		{nil, []string{"reconfigure", "n1", "n1"}, "twice"},
		{nil, []string{"reconfigure", "n1,n2,n1"}, "twice"}, // a comma-separated list is split
		{nil, []string{"reconfigure", "n1,,n2"}, "the new membership"},
		{nil, []string{"reconfigure", "-bogus", "n1"}, "flag provided but not defined"},
		// Refused before anything connects (PBFT_NATS_URL points nowhere: a connection
		// attempt would fail otherwise).
		{[]string{"PBFT_ADMIN_ID=admin", "PBFT_NATS_URL=nats://127.0.0.1:1", "PBFT_NODE_IDS=n1,n2,n3", "PBFT_KEYS_DIR=" + t.TempDir()},
			[]string{"reconfigure", "n1", "n2", "n3", "a.b"}, `replica id "a.b": a replica id must be one NATS subject token`},
		{nil, []string{"reconfigure", "n1,n2,n3,n*"}, `replica id "n*"`},
		{nil, []string{"reconfigure", "n1", "n2", "n3", "n\x014"}, `replica id "n\x014"`},
		{[]string{"PBFT_ADMIN_ID=admin", "PBFT_NATS_URL=nats://127.0.0.1:1", "PBFT_NODE_IDS=n1,a.b", "PBFT_KEYS_DIR=" + t.TempDir()},
			[]string{"reconfigure", "n1"}, `PBFT_NODE_IDS entry "a.b": must be one NATS subject token`},
		{[]string{"PBFT_ADMIN_ID="}, []string{"reconfigure", "n1", "n2"}, "PBFT_ADMIN_ID is not set"},
		{[]string{"PBFT_ADMIN_ID=admin", "PBFT_NATS_URL="}, []string{"reconfigure", "n1"}, "PBFT_NATS_URL, PBFT_NODE_IDS and PBFT_KEYS_DIR are required"},
		{[]string{"PBFT_ADMIN_ID=admin", "PBFT_NATS_URL=nats://127.0.0.1:1", "PBFT_NODE_IDS=n1,n2", "PBFT_KEYS_DIR=" + t.TempDir()},
			[]string{"reconfigure", "n1"}, "bad key material"},
	} {
		code, _, errOut := runMain(t, c.env, c.args...)
		if code != 1 || !strings.HasPrefix(errOut, "replica: reconfigure") || !strings.Contains(errOut, c.want) {
			t.Errorf("replica %v with %q: exit %d, stderr %q; want 1 and %q", c.args, c.env, code, errOut, c.want)
		}
	}
}

// A Kubernetes Job passes the membership as one $(VARIABLE): a comma-separated argument
// is the same list as separate ones.
func TestReconfigureSplitsCommaLists(t *testing.T) {
	got := strings.Join(splitIDs([]string{"replica-0,replica-1", "replica-2", "replica-3,replica-4"}), " ")
	if want := "replica-0 replica-1 replica-2 replica-3 replica-4"; got != want {
		t.Errorf("splitIDs = %q, want %q", got, want)
	}
}
