package topology

import (
	"bytes"
	"context"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/internal/topology"
)

// The scheme of deploy/k8s, with processes: every replica gets the same environment but
// its id (PBFT_INITIAL_IDS the four the cluster started with, PBFT_NODE_IDS the list to
// join), as the pods of one StatefulSet do. The fifth, outside PBFT_INITIAL_IDS, joins
// without PBFT_JOIN; replica reconfigure, given the new list as one comma-separated
// argument (as the Job passes $(VARIABLE)), admits it; a founder killed -9 and
// restarted with the new PBFT_NODE_IDS (a pod started after the ConfigMap changed)
// resumes configuration 1 from its data dir, as does the joiner; a request gets 5
// replies.
func TestOneEnvironmentForFoundersAndJoiners(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bins, top, _ := startFour(ctx, t, topology.Options{Clients: []string{"admin"}, DataDirs: true,
		Env: []string{"PBFT_ADMIN_ID=admin", "PBFT_INITIAL_IDS=n1,n2,n3,n4"}})
	const next = "PBFT_NODE_IDS=n1,n2,n3,n4,n5"
	if err := top.AddReplica(ctx, "n5"); err != nil {
		t.Fatal(err)
	}
	if err := top.StartReplica("n5", next); err != nil {
		t.Fatal(err)
	}
	readyz := top.ReplicaHTTP("n5") + "/readyz"
	poll.Eventually(t, 30*time.Second, "the joiner's /readyz saying it is not a member", func() bool {
		code, body := get(t, readyz)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "not a member")
	})

	cmd := exec.CommandContext(ctx, bins.Replica, "reconfigure", "-timeout", "60s", "n1,n2,n3,n4,n5")
	cmd.Env = []string{"PBFT_ADMIN_ID=admin", "PBFT_NATS_URL=" + top.NATSURL("admin"),
		"PBFT_NODE_IDS=n1,n2,n3,n4", "PBFT_KEYS_DIR=" + top.KeysDir(), "PBFT_REQUEST_TIMEOUT=30s"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	done := regexp.MustCompile(`^configuration 1: n1,n2,n3,n4,n5 \(primary n1\), ordered at \d+, agreed by [34] replicas; running it: n1,n2,n3,n4,n5\n$`)
	if err != nil || !done.Match(stdout) {
		t.Fatalf("replica reconfigure: %v, stdout %q, stderr %q", err, stdout, stderr.String())
	}
	if err := top.WaitReplicaReady(ctx, "n5"); err != nil {
		t.Fatal(err)
	}

	// Restarted with the list the ConfigMap now holds: each finds configuration 1 in its
	// log (a founder ignores PBFT_NODE_IDS, the joiner's admission is done).
	for _, id := range []string{"n2", "n5"} {
		if err := top.KillReplica(id); err != nil {
			t.Fatal(err)
		}
		if err := top.StartReplica(id, next); err != nil {
			t.Fatal(err)
		}
		if err := top.WaitReplicaReady(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	init5 := `{"src": "c1", "dest": "n1", "body": {"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1", "n2", "n3", "n4", "n5"]}}`
	out := runStdio(t, top, "gateway", init5,
		`{"src": "c1", "dest": "n1", "body": {"type": "pbft_execute", "msg_id": 2, "operation": "set x=1", "client": "c1"}}`,
		`{"src": "c1", "dest": "n1", "body": {"type": "pbft_cluster", "msg_id": 3}}`)
	if out[1]["type"] != "pbft_execute_ok" || out[1]["replies"] != float64(5) {
		t.Fatalf("pbft_execute after the restarts: %v; want 5 replies", out[1])
	}
	if reps, _ := out[2]["replicas"].([]any); len(reps) != 5 {
		t.Fatalf("pbft_cluster after the restarts: %v", out[2])
	}
}
