package client_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/kv"
	"github.com/pbft-nats/pbft/pbft/node"
)

// A client joins the cluster with its own identity and key, and gets each result only
// once a quorum of replicas (3 of 4) sent the same one.
func Example() {
	replicas := []string{"r1", "r2", "r3", "r4"}
	natsURL, keysDir, stop, err := startReplicas(replicas, "example-app")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	ctx := context.Background()
	c, err := client.Connect(ctx, client.Options{NATSURL: natsURL, ID: "example-app", KeysDir: keysDir, Replicas: replicas})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	// Timestamps order one client's requests; a retransmission repeats its timestamp.
	for t, op := range []string{"set greeting=hello", "get greeting"} {
		res, err := c.Invoke(ctx, client.Request{Client: "alice", Timestamp: uint64(t + 1), Op: []byte(op)})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: %q, from a quorum: %v\n", op, res.Value, res.Replies >= c.Accept())
	}
	// Output:
	// set greeting=hello: "OK", from a quorum: true
	// get greeting: "hello", from a quorum: true
}

// startReplicas runs what `scripts/local-cluster.sh start` runs, in this process: a NATS
// server on a free loopback port, keys for the replicas and the client in a temporary
// directory (`replica keygen`), and one replica per id.
func startReplicas(ids []string, clientID string) (natsURL, keysDir string, stop func(), err error) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{Port: -1})
	if err != nil {
		return "", "", nil, err
	}
	keysDir, err = os.MkdirTemp("", "pbft-keys-")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var conns []*nats.Conn
	stop = func() {
		cancel()
		wg.Wait()
		for _, nc := range conns {
			nc.Close()
		}
		srv.Shutdown()
		_ = os.RemoveAll(keysDir)
	}
	for _, id := range append([]string{clientID}, ids...) {
		if err == nil {
			err = auth.WriteKeyPair(keysDir, id)
		}
	}
	for _, id := range ids {
		if err != nil {
			break
		}
		var keys *auth.Keyring
		if keys, err = auth.LoadKeyring(keysDir, id, ids, uint64(time.Now().UnixNano())); err != nil {
			break
		}
		var nc *nats.Conn
		if nc, err = bus.Connect(srv.ClientURL(), id); err != nil {
			break
		}
		conns = append(conns, nc)
		var n *node.Node
		n, err = node.New(node.Config{ID: id, NodeIDs: ids, Protocol: pbft.DefaultConfig(), Tick: 10 * time.Millisecond, Keys: keys, App: kv.New()},
			func(h bus.Handler) (bus.Transport, error) { return bus.NewNATS(nc, "pbft", id, bus.RoleReplica, h) })
		if err != nil {
			break
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Run(ctx) }()
	}
	if err != nil {
		stop()
		return "", "", nil, err
	}
	return srv.ClientURL(), keysDir, stop, nil
}
