package topology

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/internal/topology"
)

// Four external cmd/replica processes and a fifth started to join (PBFT_JOIN=on,
// PBFT_NODE_IDS the membership it joins): it waits not ready; a reconfiguration from
// anyone but the administrator changes nothing (replica reconfigure signed by another
// key is refused by the replicas; a gateway of another identity refuses pbft_reconfigure
// with error 10) and requests still get 4 replies; the administrator's gateway refuses a
// membership whose replicas do not run (error 22), reconfigures to five, and once the
// joiner reports itself ready the next pbft_execute gets 5 replies.
func TestExternalReplicaJoinsByTheAdministratorsReconfiguration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bins, top, _ := startFour(ctx, t, topology.Options{Clients: []string{"admin", "intruder"},
		Env: []string{"PBFT_ADMIN_ID=admin"}})
	if err := top.AddReplica(ctx, "n5"); err != nil {
		t.Fatal(err)
	}
	if err := top.StartReplica("n5", "PBFT_JOIN=on", "PBFT_NODE_IDS=n1,n2,n3,n4,n5"); err != nil {
		t.Fatal(err)
	}
	// The joiner serves /readyz and says it is not a member.
	readyz := top.ReplicaHTTP("n5") + "/readyz"
	poll.Eventually(t, 30*time.Second, "the joiner's /readyz saying it is not a member", func() bool {
		code, body := get(t, readyz)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "not a member")
	})

	// Signed with another key than the administrator's: executed to a refusal.
	cmd := exec.CommandContext(ctx, bins.Replica, "reconfigure", "-timeout", "30s", "n1", "n2", "n3", "n4", "n5")
	cmd.Env = []string{"PBFT_ADMIN_ID=intruder", "PBFT_NATS_URL=" + top.NATSURL("intruder"),
		"PBFT_NODE_IDS=n1,n2,n3,n4", "PBFT_KEYS_DIR=" + top.KeysDir()}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "refused") ||
		!strings.Contains(stderr.String(), `"intruder" is not the administrator`) {
		t.Fatalf("replica reconfigure as intruder: %v, stderr %q; want a refusal", err, stderr.String())
	}

	init4 := `{"src": "c1", "dest": "n1", "body": {"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1", "n2", "n3", "n4"]}}`
	reconf := `{"src": "c1", "dest": "n1", "body": {"type": "pbft_reconfigure", "msg_id": 2, "replicas": ["n1", "n2", "n3", "n4", "n5"]}}`
	out := runStdio(t, top, "gateway", init4, reconf,
		`{"src": "c1", "dest": "n1", "body": {"type": "pbft_execute", "msg_id": 3, "operation": "set x=1", "client": "c1"}}`,
		`{"src": "c1", "dest": "n1", "body": {"type": "pbft_cluster", "msg_id": 4}}`)
	if out[1]["type"] != "error" || out[1]["code"] != float64(10) {
		t.Fatalf("pbft_reconfigure from a gateway that is not the administrator: %v", out[1])
	}
	if out[2]["type"] != "pbft_execute_ok" || out[2]["replies"] != float64(4) {
		t.Fatalf("pbft_execute after the refused reconfigurations: %v", out[2])
	}
	if reps, _ := out[3]["replicas"].([]any); len(reps) != 4 {
		t.Fatalf("pbft_cluster after the refused reconfigurations: %v", out[3])
	}
	if code, body := get(t, readyz); code != http.StatusServiceUnavailable {
		t.Fatalf("the joiner is ready after refused reconfigurations: %d %s", code, body)
	}

	out = runStdio(t, top, "admin", init4,
		// n6..n8 do not run: a membership that could not make progress changes nothing.
		`{"src": "c1", "dest": "n1", "body": {"type": "pbft_reconfigure", "msg_id": 9, "replicas": ["n1", "n6", "n7", "n8"]}}`,
		`{"src": "c1", "dest": "n1", "body": {"type": "pbft_reconfigure", "msg_id": 8, "replicas": ["n1", "n2", "n3", "n4", "admin"]}}`,
		reconf)
	if out[1]["type"] != "error" || out[1]["code"] != float64(22) {
		t.Fatalf("pbft_reconfigure to replicas that do not run: %v", out[1])
	}
	if out[2]["type"] != "error" || out[2]["code"] != float64(12) {
		t.Fatalf("pbft_reconfigure naming the administrator as a replica: %v", out[2])
	}
	if out[3]["type"] != "pbft_reconfigure_ok" || out[3]["configuration"] != float64(1) || out[3]["primary"] != "n1" {
		t.Fatalf("the administrator's pbft_reconfigure: %v", out[3])
	}
	// The answer comes once the members run configuration 1, but a pbft_execute reports
	// only the replies that arrive within its wait, and n5 may still be fetching the state
	// (README, Changing the membership): it must be ready before 5 replies are due. A
	// gateway given the five ids tags its requests for n5 from the start.
	if err := top.WaitReplicaReady(ctx, "n5"); err != nil {
		t.Fatal(err)
	}
	out = runStdio(t, top, "admin",
		`{"src": "c1", "dest": "n1", "body": {"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1", "n2", "n3", "n4", "n5"]}}`,
		`{"src": "c1", "dest": "n1", "body": {"type": "pbft_execute", "msg_id": 5, "operation": "set y=2", "client": "c1"}}`,
		`{"src": "c1", "dest": "n1", "body": {"type": "pbft_execute", "msg_id": 6, "operation": "get x", "client": "c1"}}`)
	for i, want := range map[int]string{1: "OK", 2: "1"} {
		if out[i]["type"] != "pbft_execute_ok" || out[i]["replies"] != float64(5) || out[i]["result"] != want {
			t.Fatalf("pbft_execute after the reconfiguration: %v; want %q from 5 replies", out[i], want)
		}
	}

	// The administrator's replica reconfigure takes n5 out again: told the five, it finds
	// configuration 1 and ends it; a gateway given the four gets 4 replies, and n5 says
	// it is no member any more.
	cmd = exec.CommandContext(ctx, bins.Replica, "reconfigure", "n1", "n2", "n3", "n4")
	cmd.Env = []string{"PBFT_ADMIN_ID=admin", "PBFT_NATS_URL=" + top.NATSURL("admin"),
		"PBFT_NODE_IDS=n1,n2,n3,n4,n5", "PBFT_KEYS_DIR=" + top.KeysDir()}
	stderr.Reset()
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	// A quorum of the five (4) agreed, maybe all of them by the time the answer was taken.
	done := regexp.MustCompile(`^configuration 2: n1,n2,n3,n4 \(primary n1\), ordered at 6, agreed by [45] replicas; running it: n1,n2,n3,n4\n$`)
	if err != nil || !done.Match(stdout) {
		t.Fatalf("replica reconfigure as the administrator: %v, stdout %q, stderr %q", err, stdout, stderr.String())
	}
	out = runStdio(t, top, "gateway", init4,
		`{"src": "c1", "dest": "n1", "body": {"type": "pbft_execute", "msg_id": 7, "operation": "get y", "client": "c1"}}`)
	if out[1]["type"] != "pbft_execute_ok" || out[1]["replies"] != float64(4) || out[1]["result"] != "2" {
		t.Fatalf("pbft_execute after n5 left: %v", out[1])
	}
	poll.Eventually(t, 30*time.Second, "n5's /readyz saying it left", func() bool {
		code, body := get(t, readyz)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "not a member of configuration 2")
	})
}

// runStdio runs a stdio gateway of identity id against the topology on lines and
// returns the bodies of its answers, one per line.
func runStdio(t *testing.T, top *topology.Topology, id string, lines ...string) []map[string]any {
	t.Helper()
	var stdout bytes.Buffer
	p, err := top.StartStdioGateway(topology.StdioGateway{ClientID: id, Stdin: strings.NewReader(strings.Join(lines, "\n") + "\n"),
		Stdout: &stdout, Env: []string{"PBFT_ADMIN_ID=admin"}})
	if err != nil {
		t.Fatal(err)
	}
	if !p.WaitExit(60 * time.Second) {
		t.Fatalf("stdio gateway %s did not finish: %s", id, p.Log())
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var m struct{ Body map[string]any }
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("stdio gateway %s wrote %q: %v\n%s", id, l, err, p.Log())
		}
		out = append(out, m.Body)
	}
	if len(out) != len(lines) {
		t.Fatalf("stdio gateway %s answered %d of %d lines: %s\n%s", id, len(out), len(lines), stdout.String(), p.Log())
	}
	t.Logf("stdio gateway %s: %s", id, stdout.String())
	return out
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, fmt.Sprint(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
