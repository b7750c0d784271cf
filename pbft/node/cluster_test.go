package node_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/kv"
	"github.com/pbft-nats/pbft/pbft/node"
)

// memCluster is four replicas n1..n4 and a gateway client "gw" over the in-memory hub.
type memCluster struct {
	ids    []string
	nodes  map[string]*node.Node
	client *client.Client
	hub    *bus.Hub
	keys   map[string]*auth.Keyring // the replicas', "gw"'s and a spare client "reader"'s
	stop   func()                   // stops the nodes (if started), the client and the hub; idempotent
}

// newMemCluster builds the nodes without running them; adjust changes each node's
// config and wrap (if not nil) its transport. run starts them.
func newMemCluster(t *testing.T, adjust func(*node.Config), wrap func(bus.Transport) bus.Transport) *memCluster {
	t.Helper()
	ids := []string{"n1", "n2", "n3", "n4"}
	keys, err := auth.GenerateKeyrings(append([]string{"gw", "reader"}, ids...), ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := &memCluster{ids: ids, nodes: map[string]*node.Node{}, hub: bus.NewHub("test"), keys: keys}
	for _, id := range ids {
		cfg := node.Config{ID: id, NodeIDs: ids, Protocol: pbft.DefaultConfig(), Tick: 5 * time.Millisecond, Keys: keys[id], App: kv.New()}
		if adjust != nil {
			adjust(&cfg)
		}
		n, err := node.New(cfg, func(h bus.Handler) (bus.Transport, error) {
			mt, err := c.hub.Join(id, bus.RoleReplica, h)
			if err != nil || wrap == nil {
				return mt, err
			}
			return wrap(mt), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[id] = n
	}
	c.client, err = client.New(client.Config{Keys: keys["gw"], Connect: func(h bus.Handler) (bus.Transport, error) { return c.hub.Join("gw", bus.RoleClient, h) }})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	c.stop = func() { once.Do(func() { c.client.Close(); c.hub.Close() }) }
	t.Cleanup(func() { c.stop() })
	return c
}

// run starts every node; stop then waits for them to end.
func (c *memCluster) run() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Run(ctx) }()
	}
	closeRest := c.stop
	var once sync.Once
	c.stop = func() { once.Do(func() { cancel(); wg.Wait(); closeRest() }) }
}
