package topology

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/internal/topology"
)

// A running network-mode gateway follows reconfigurations it did not make: four external
// replicas and the HTTP gateway (told n1..n4); the administrator grows the membership to
// five with `replica reconfigure` (another process); the gateway lists the five members
// within seconds, and its next pbft_execute counts 5 replies of configuration 1. Then the
// administrator drops n1, the primary the gateway sends to; the gateway's next request
// shows it configuration 2 and is answered by its 4 members, and what was written before
// reads back.
func TestRunningGatewayFollowsAReconfigurationMadeElsewhere(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bins, top, four := startFour(ctx, t, topology.Options{Clients: []string{"admin"},
		GatewayHTTP: true, Env: []string{"PBFT_ADMIN_ID=admin"}})
	execute := func(ts int, op string) reply {
		t.Helper()
		return postMessage(t, top, fmt.Sprintf(`{"type":"pbft_execute","msg_id":%d,"operation":%q,"client":"c1"}`, ts, op))
	}
	if r := execute(1, "set x=1"); r.Type != "pbft_execute_ok" || r.Replies != 4 {
		t.Fatalf("pbft_execute before any reconfiguration: %+v", r)
	}

	if err := top.AddJoiner(ctx, "n5", append(slices.Clone(four), "n5")); err != nil {
		t.Fatal(err)
	}
	if err := top.StartReplica("n5"); err != nil {
		t.Fatal(err)
	}
	if err := top.WaitJoinerWaiting(ctx, "n5"); err != nil {
		t.Fatal(err)
	}
	adminReconfigure(t, ctx, bins, top, four, "n1", "n2", "n3", "n4", "n5")
	// The contract answers with the replies that arrived within the wait: a joiner still
	// installing the state may miss it, so it must be ready first (README, Changing the
	// membership).
	if err := top.WaitReplicaReady(ctx, "n5"); err != nil {
		t.Fatal(err)
	}
	// The gateway asks the replicas each second which configuration is in force: a
	// request it sent before it follows configuration 1 would carry no tag for n5.
	poll.Eventually(t, 10*time.Second, "the gateway listing the five members", func() bool {
		return len(postMessage(t, top, `{"type":"pbft_cluster","msg_id":1}`).Replicas) == 5
	})
	if r := execute(2, "set y=2"); r.Type != "pbft_execute_ok" || r.Replies != 5 || r.Result == nil || *r.Result != "OK" {
		t.Fatalf("the gateway's first pbft_execute after a grow made elsewhere: %+v; want OK from 5 replies", r)
	}
	if r := execute(3, "get x"); r.Type != "pbft_execute_ok" || r.Replies != 5 || r.Result == nil || *r.Result != "1" {
		t.Fatalf("pbft_execute after the grow: %+v; want 1 from 5 replies", r)
	}

	// n1, the primary of both configurations so far, leaves.
	rest := []string{"n2", "n3", "n4", "n5"}
	adminReconfigure(t, ctx, bins, top, rest, rest...)
	if r := execute(4, "set z=3"); r.Type != "pbft_execute_ok" || r.Replies != 4 || r.Result == nil || *r.Result != "OK" {
		t.Fatalf("the gateway's first pbft_execute after its primary left: %+v; want OK from 4 replies", r)
	}
	r := postMessage(t, top, `{"type":"pbft_cluster","msg_id":5}`)
	var members []string
	for _, rep := range r.Replicas {
		members = append(members, rep.Node)
	}
	if r.Type != "pbft_cluster_ok" || !slices.Equal(members, rest) || r.Primary != "n2" {
		t.Fatalf("pbft_cluster after n1 left: %+v; want members %v, primary n2", r, rest)
	}
	if got := mustDo(t, http.MethodGet, top.GatewayURL()+"/v1/kv/y", "", http.StatusOK); got != "2" {
		t.Fatalf("GET /v1/kv/y after two reconfigurations = %q", got)
	}
}

// adminReconfigure runs `replica reconfigure next...` as the administrator, told the
// members in force (PBFT_NODE_IDS=known), and fails the test unless it succeeds.
func adminReconfigure(t *testing.T, ctx context.Context, bins topology.Binaries, top *topology.Topology, known []string, next ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bins.Replica, "reconfigure", "-timeout", "60s")
	cmd.Args = append(cmd.Args, next...)
	cmd.Env = []string{"PBFT_ADMIN_ID=admin", "PBFT_NATS_URL=" + top.NATSURL("admin"),
		"PBFT_NODE_IDS=" + strings.Join(known, ","), "PBFT_KEYS_DIR=" + top.KeysDir()}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("replica reconfigure %v: %v\nstdout %s\nstderr %s", next, err, out, stderr.String())
	}
	t.Logf("replica reconfigure %v: %s", next, out)
}
