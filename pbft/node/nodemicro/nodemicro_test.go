package nodemicro_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/kv"
	"github.com/pbft-nats/pbft/pbft/node"
	"github.com/pbft-nats/pbft/pbft/node/nodemicro"
)

// setup runs replica n2 of n1..n4 (alone, on an in-memory bus), registers it on an
// embedded NATS server and returns a client connection to that server and the node's stop.
func setup(t *testing.T) (*nats.Conn, func()) {
	t.Helper()
	ids := []string{"n1", "n2", "n3", "n4"}
	keys, err := auth.GenerateKeyrings(ids, ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	hub := bus.NewHub("c")
	t.Cleanup(hub.Close)
	cfg := node.Config{ID: "n2", NodeIDs: ids, Protocol: pbft.DefaultConfig(), Tick: 5 * time.Millisecond, Keys: keys["n2"], App: kv.New()}
	n, err := node.New(cfg, func(h bus.Handler) (bus.Transport, error) { return hub.Join("n2", bus.RoleReplica, h) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	conn := func(name string) *nats.Conn {
		nc, err := bus.ConnectInProcess(srv, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	ms, err := nodemicro.Register(conn("n2"), n, "c", ids)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Stop() })
	return conn("client"), stop
}

func TestStatusThroughTheServicesFramework(t *testing.T) {
	nc, _ := setup(t)
	msg, err := nc.Request("$SRV.INFO."+nodemicro.ServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "pbft-replica" || info.Metadata["replica"] != "n2" || len(info.Endpoints) != 1 ||
		info.Endpoints[0].Name != "status" || info.Endpoints[0].Subject != "pbft.c.replica.n2.status" {
		t.Fatalf("info: %s", msg.Data)
	}
	msg, err = nc.Request("pbft.c.replica.n2.status", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var st nodemicro.Status
	if err := json.Unmarshal(msg.Data, &st); err != nil {
		t.Fatal(err)
	}
	if want := (nodemicro.Status{Replica: "n2", Primary: "n1", ViewActive: true, Fault: "none"}); st != want {
		t.Fatalf("status %s, want %+v", msg.Data, want)
	}
}

// A replica whose loop has stopped answers an error, not nothing.
func TestStatusOfAStoppedReplicaIsAnError(t *testing.T) {
	nc, stop := setup(t)
	stop()
	msg, err := nc.Request("pbft.c.replica.n2.status", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get(micro.ErrorCodeHeader) != "503" || msg.Header.Get(micro.ErrorHeader) == "" {
		t.Fatalf("status of a stopped replica: %q %v", msg.Data, msg.Header)
	}
}
