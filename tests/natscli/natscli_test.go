// Package natscli tests the NATS-native API with the real nats CLI
// (github.com/nats-io/natscli) against an external cluster of real processes
// (internal/topology: nats-server with deploy/k8s/nats/auth.conf's users, four
// cmd/replica, cmd/gateway): `nats micro ls` finds the gateway and every replica, and
// `nats req pbft.pbft.api` runs the client protocol through PBFT. Run with:
//
//	GOBIN=$PWD/bin go install github.com/nats-io/natscli/nats@v0.5.0
//	PBFT_NATS_CLI=$PWD/bin/nats go test -race ./tests/natscli/
package natscli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/internal/topology"
)

func TestMain(m *testing.M) { os.Exit(topology.RunAndRemoveBuilds(m.Run)) }

const howToInstall = "GOBIN=$PWD/bin go install github.com/nats-io/natscli/nats@v0.5.0, then PBFT_NATS_CLI=$PWD/bin/nats"

// natsCLI finds the nats CLI: PBFT_NATS_CLI, else nats on PATH. Without one the test
// skips, saying how to run it; PBFT_REQUIRE_NATS_CLI=1 (CI) makes that a failure.
func natsCLI(t *testing.T) string {
	if p := os.Getenv("PBFT_NATS_CLI"); p != "" {
		return p
	}
	if p, err := exec.LookPath("nats"); err == nil {
		return p
	}
	const msg = "no nats CLI on PATH or in PBFT_NATS_CLI: " + howToInstall
	if os.Getenv("PBFT_REQUIRE_NATS_CLI") == "1" {
		t.Fatal(msg + " (PBFT_REQUIRE_NATS_CLI=1 requires it)")
	}
	t.Skip(msg + " to run this test; PBFT_REQUIRE_NATS_CLI=1 makes a missing CLI a failure")
	return ""
}

var replicas = []string{"replica-0", "replica-1", "replica-2", "replica-3"}

func TestNATSCLIAgainstExternalCluster(t *testing.T) {
	cli := natsCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bins, err := topology.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	top, err := topology.Start(ctx, bins, topology.Options{Replicas: replicas, Cluster: "pbft", Auth: true, GatewayHTTP: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the gateway:\n%s", top.GatewayLog())
		}
		if err := top.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	config := t.TempDir() // no context of the machine's user applies
	// nats runs the CLI as NATS user user; stdout, and stderr folded into err.
	nats := func(user string, args ...string) (string, error) {
		args = append([]string{"--server", "nats://" + top.NATSAddr(0), "--user", user, "--password", top.Password(user), "--timeout", "10s"}, args...)
		cmd := exec.CommandContext(ctx, cli, args...)
		cmd.Env = append(os.Environ(), "HOME="+config, "XDG_CONFIG_HOME="+config, "NATS_CONTEXT=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return stdout.String(), &cliError{args: args[6:], err: err, stderr: stderr.String()}
		}
		return stdout.String(), nil
	}

	// `nats micro ls` as the monitor user: the gateway and the four replicas. The
	// gateway registers once it has joined the replicas, which may be just after its
	// /readyz first answers.
	var listed string
	poll.Eventually(t, 30*time.Second, "nats micro ls lists pbft-gateway and four pbft-replica instances", func() bool {
		out, err := nats(topology.MonitorUser, "micro", "ls", "--json")
		if err != nil {
			t.Logf("%v", err)
			return false
		}
		listed = out
		var infos []struct {
			Name     string            `json:"name"`
			Metadata map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(out), &infos); err != nil {
			t.Logf("nats micro ls --json: %v: %s", err, out)
			return false
		}
		count := map[string]int{}
		for _, i := range infos {
			count[i.Name]++
		}
		return count["pbft-gateway"] == 1 && count["pbft-replica"] == len(replicas)
	})
	t.Logf("nats micro ls:\n%s", listed)
	if out, err := nats(topology.MonitorUser, "micro", "info", "pbft-gateway"); err != nil || !strings.Contains(out, "pbft.pbft.api") {
		t.Fatalf("nats micro info pbft-gateway: %v\n%s", err, out)
	}

	// `nats req pbft.pbft.api` as the client user: the client protocol through PBFT.
	req := func(body string) map[string]any {
		t.Helper()
		out, err := nats(topology.ClientUser, "req", "--raw", "pbft.pbft.api", body)
		if err != nil {
			t.Fatalf("nats req pbft.pbft.api %s: %v", body, err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &m); err != nil {
			t.Fatalf("nats req pbft.pbft.api %s: not a JSON answer: %q", body, out)
		}
		return m
	}
	if m := req(`{"type": "pbft_execute", "msg_id": 1, "operation": "set x=42", "client": "cli"}`); m["type"] != "pbft_execute_ok" || m["result"] != "OK" || m["replies"].(float64) < 2 {
		t.Fatalf("pbft_execute: %v", m)
	}
	if m := req(`{"type": "pbft_execute", "msg_id": 2, "operation": "get x", "client": "cli"}`); m["type"] != "pbft_execute_ok" || m["result"] != "42" {
		t.Fatalf("pbft_execute get: %v", m)
	}
	// A conflicting retransmission is refused with 22, as over HTTP.
	if m := req(`{"type": "pbft_execute", "msg_id": 1, "operation": "set x=0", "client": "cli"}`); m["type"] != "error" || m["code"] != 22.0 {
		t.Fatalf("conflicting retransmission: %v", m)
	}
	if m := req(`{"type": "pbft_execute", "msg_id": 3, "operation": "get x", "client": "cli"}`); m["result"] != "42" {
		t.Fatalf("the refused write was executed: %v", m)
	}
	// A replica's status, as the monitor user.
	out, err := nats(topology.MonitorUser, "req", "--raw", "pbft.pbft.replica.replica-1.status", "")
	var st struct {
		Replica      string `json:"replica"`
		Primary      string `json:"primary"`
		LastExecuted uint64 `json:"last_executed"`
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Replica != "replica-1" || st.Primary != "replica-0" || st.LastExecuted < 3 {
		t.Fatalf("status of replica-1: %v %q", err, out)
	}
	// The client user may only ask the gateway.
	if _, err := nats(topology.ClientUser, "pub", "pbft.pbft.commit.replica-0", "x"); err == nil || !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
		t.Fatalf("the client user published a protocol subject: %v", err)
	}
	// The endpoint's counts.
	out, err = nats(topology.MonitorUser, "micro", "stats", "pbft-gateway", "--json")
	if err != nil || !strings.Contains(out, `"num_requests": 4`) && !strings.Contains(out, `"num_requests":4`) {
		t.Fatalf("nats micro stats pbft-gateway: %v\n%s", err, out)
	}
}

// cliError is a failed run of the CLI, with what it said.
type cliError struct {
	args   []string
	err    error
	stderr string
}

func (e *cliError) Error() string {
	return "nats " + strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + strings.TrimSpace(e.stderr)
}
