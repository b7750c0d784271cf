package topology

import (
	"bytes"
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/internal/topology"
)

// The administrator adds n5 while its process does not run yet (replica reconfigure is
// executed and answered by the four, which the command reports as an error); n5, started afterwards with PBFT_JOIN=on, asks the members for
// the admission they kept, joins, reports itself ready, and the next pbft_execute gets 5
// replies.
func TestExternalReplicaStartedAfterItsAdmissionJoins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bins, top, _ := startFour(ctx, t, topology.Options{Clients: []string{"admin"}, Env: []string{"PBFT_ADMIN_ID=admin"}})
	if err := top.AddReplica(ctx, "n5"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bins.Replica, "reconfigure", "-timeout", "30s", "n1", "n2", "n3", "n4", "n5")
	cmd.Env = []string{"PBFT_ADMIN_ID=admin", "PBFT_NATS_URL=" + top.NATSURL("admin"),
		"PBFT_NODE_IDS=n1,n2,n3,n4", "PBFT_KEYS_DIR=" + top.KeysDir()}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// Executed, but the command exits 1: n5 does not run the configuration in time.
	stdout, err := cmd.Output()
	if err == nil || !strings.HasPrefix(string(stdout), "configuration 1: n1,n2,n3,n4,n5") ||
		!strings.Contains(stderr.String(), "only 4 of the 5 members") {
		t.Fatalf("replica reconfigure with n5 not running: %v, stdout %q, stderr %q", err, stdout, stderr.String())
	}
	if err := top.StartReplica("n5", "PBFT_JOIN=on", "PBFT_NODE_IDS=n1,n2,n3,n4,n5"); err != nil {
		t.Fatal(err)
	}
	readyz := top.ReplicaHTTP("n5") + "/readyz"
	poll.Eventually(t, 60*time.Second, "the late joiner's /readyz saying ready", func() bool {
		code, _ := get(t, readyz)
		return code == http.StatusOK
	})
	out := runStdio(t, top, "admin",
		`{"src": "c1", "dest": "n1", "body": {"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1", "n2", "n3", "n4", "n5"]}}`,
		`{"src": "c1", "dest": "n1", "body": {"type": "pbft_execute", "msg_id": 2, "operation": "set y=2", "client": "c1"}}`)
	if out[1]["type"] != "pbft_execute_ok" || out[1]["replies"] != float64(5) || out[1]["result"] != "OK" {
		t.Fatalf("pbft_execute after the late joiner is ready: %v; want OK from 5 replies", out[1])
	}
}
