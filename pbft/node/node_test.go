package node_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/node"
)

// The node is transport-agnostic: four replicas and a gateway client over the in-memory
// hub order a request, report its status, and drop what an unknown sender publishes.
func TestNodesOverMemoryTransport(t *testing.T) {
	mc := newMemCluster(t, nil, nil)
	mc.run()
	ids, nodes, c, hub := mc.ids, mc.nodes, mc.client, mc.hub
	ctx := context.Background()
	qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
	defer qcancel()
	req := c.NewRequest("c1", 7, []byte("set x=1"))
	a, err := c.Query(qctx, "n2", &node.Query{Op: node.OpSubmit, Request: pbft.Marshal(req), WaitMillis: 4000})
	if err != nil || !a.Ordered || a.Seq != 1 || a.View != 0 {
		t.Fatalf("submit through a backup: %+v %v", a, err)
	}
	st, err := c.Query(qctx, "n3", &node.Query{Op: node.OpStatus, Seq: 1, WaitMillis: 4000,
		Wait: &node.Wait{MinExecuted: 1, CommitsFrom: ids}})
	if err != nil || st.TimedOut || st.Phase != "committed" || st.Prepares != 3 || st.Commits != 4 || !st.Executed {
		t.Fatalf("status: %+v %v", st, err)
	}
	// A stranger on the bus is dropped and counted, never stepped.
	stranger, _ := hub.Join("mallory", bus.RoleClient, func(bus.Message) {})
	_ = stranger.Broadcast("commit", []byte("garbage"))
	poll.Eventually(t, 5*time.Second, "stranger's message counted as rejected", func() bool {
		rejected := nodes["n1"].Stats().Rejected
		return rejected[node.RejectMalformed]+rejected[node.RejectUnknownSender] > 0
	})
	if in := nodes["n1"].Stats().In["commit"]; in < 3 {
		t.Fatalf("n1 stepped %d commits, want at least 3", in)
	}
}

func TestConfigNeedsOwnKeys(t *testing.T) {
	ids := []string{"n1", "n2"}
	keys, _ := auth.GenerateKeyrings(ids, ids, 1)
	cfg := node.Config{ID: "n1", NodeIDs: ids, Protocol: pbft.DefaultConfig(), Tick: time.Millisecond, Keys: keys["n2"]}
	if err := cfg.Validate(); err == nil {
		t.Fatal("a replica with another's keys was accepted")
	}
	cfg.Keys = nil
	if err := cfg.Validate(); err == nil {
		t.Fatal("a replica without keys was accepted")
	}
	cfg.Keys = keys["n1"]
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The driver runs any application, but never none: a missing one is a configuration
// error, not a crash at the first request.
func TestNewNeedsAnApplication(t *testing.T) {
	ids := []string{"n1"}
	keys, _ := auth.GenerateKeyrings(ids, ids, 1)
	cfg := node.Config{ID: "n1", NodeIDs: ids, Protocol: pbft.DefaultConfig(), Tick: time.Millisecond, Keys: keys["n1"]}
	connected := false
	_, err := node.New(cfg, func(bus.Handler) (bus.Transport, error) { connected = true; return nil, nil })
	if !errors.Is(err, node.ErrConfig) || connected {
		t.Fatalf("New without an application: err %v, connected %v; want ErrConfig before connecting", err, connected)
	}
}
