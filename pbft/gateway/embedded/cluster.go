// Package embedded runs a whole PBFT cluster in one process: an in-process NATS server,
// one key-value replica (pbft/node running pbft/kv) per id, each on its own connection,
// and a client for the gateway. It is the gateway's backend in stdio mode and in tests,
// and its settle policy: since it injects the replicas' faults, it knows them, and
// answers wait for exactly the replicas that can answer.
package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/kv"
	"github.com/pbft-nats/pbft/pbft/node"
	"github.com/pbft-nats/pbft/pbft/node/nodehttp"
)

// Cluster is the replicas ids in this process and the gateway's client of them.
type Cluster struct {
	srv     *server.Server
	ids     []string
	nodes   map[string]*node.Node
	conns   []*nats.Conn
	client  *client.Client
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	faults  map[string]node.Fault
	keys    map[string]*auth.Keyring // kept for tests that play a Byzantine replica
	cluster string
	metrics *nodehttp.Collector

	// Reconfiguration (reconfig.go): the settings and logger replicas start with, each
	// running replica's stop, and every replica id that ever ran, in the order the
	// request authenticators list them.
	ctx      context.Context
	settings config.Settings
	logger   *slog.Logger
	stops    map[string]func()
	universe []string
	reconfMu sync.Mutex
}

// Start starts the cluster of replicas ids with settings s.
func Start(ids []string, s config.Settings, logger *slog.Logger) (*Cluster, error) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{MaxPayload: int32(s.EmbeddedMaxPayload)})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Cluster{srv: srv, ids: slices.Clone(ids), nodes: map[string]*node.Node{}, cancel: cancel, faults: map[string]node.Fault{},
		ctx: ctx, settings: s, logger: logger, stops: map[string]func(){}, universe: slices.Clone(ids)}
	fail := func(err error) (*Cluster, error) {
		e.Close()
		return nil, err
	}
	if slices.Contains(ids, s.ClientID) {
		return fail(fmt.Errorf("gateway id %q is also a replica id", s.ClientID))
	}
	keys, err := auth.GenerateKeyrings(append(slices.Clone(ids), s.ClientID), ids, uint64(time.Now().UnixNano()))
	if err != nil {
		return fail(err)
	}
	e.keys, e.cluster = keys, s.Cluster
	for _, id := range ids {
		if err := e.startReplica(id, ids, 0, nil); err != nil {
			return fail(err)
		}
	}
	c, err := client.New(client.Config{Keys: keys[s.ClientID], Connect: e.connect(s.Cluster, s.ClientID, bus.RoleClient),
		Replicas: ids, Timeout: s.RequestTimeout, Retransmit: client.RetransmitAfter(s.ViewChangeTimeout)})
	if err != nil {
		return fail(err)
	}
	e.client = c
	e.metrics = nodehttp.NewCollector(func() []nodehttp.Replica {
		e.mu.Lock()
		defer e.mu.Unlock()
		out := make([]nodehttp.Replica, 0, len(e.ids))
		for _, id := range e.ids {
			out = append(out, nodehttp.Replica{Source: e.nodes[id]})
		}
		return out
	})
	return e, nil
}

func (e *Cluster) connect(cluster, id string, role bus.Role) func(bus.Handler) (bus.Transport, error) {
	return func(h bus.Handler) (bus.Transport, error) {
		nc, err := e.Connect(id)
		if err != nil {
			return nil, err
		}
		return bus.NewNATS(nc, cluster, id, role, h)
	}
}

// Connect returns a new plain connection to the cluster's server, closed with the
// cluster: for watchers of the trace, and tests that play an attacker on the bus.
func (e *Cluster) Connect(name string) (*nats.Conn, error) {
	nc, err := bus.ConnectInProcess(e.srv, name)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.conns = append(e.conns, nc)
	e.mu.Unlock()
	return nc, nil
}

// Client returns the gateway's bus client.
func (e *Cluster) Client() *client.Client { return e.client }

// Node returns the replica id, or nil.
func (e *Cluster) Node(id string) *node.Node {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nodes[id]
}

// startReplica starts replica id of configuration conf (members ids), a joiner when
// from is set. The gateway's identity is the administrator: the stdio input may always
// reconfigure the cluster it runs.
func (e *Cluster) startReplica(id string, ids []string, conf uint64, from *pbft.Membership) error {
	cfg, err := node.FromSettings(e.settings, id, ids, e.keys[id], e.logger.With("replica", id))
	if err != nil {
		return err
	}
	cfg.App = kv.New()
	cfg.Configuration, cfg.JoinFrom = conf, from
	cfg.Protocol.Admin = e.settings.ClientID
	n, err := node.New(cfg, e.connect(e.settings.Cluster, id, bus.RoleReplica))
	if err != nil {
		return fmt.Errorf("replica %s: %w", id, err)
	}
	ctx, stop := context.WithCancel(e.ctx)
	done := make(chan struct{})
	e.mu.Lock()
	e.nodes[id], e.faults[id] = n, cfg.Fault
	e.stops[id] = func() { stop(); <-done }
	e.mu.Unlock()
	e.wg.Add(1)
	go func() { defer e.wg.Done(); defer close(done); _ = n.Run(ctx) }()
	return nil
}

// Keyring returns replica id's keys, for tests that play a Byzantine replica.
func (e *Cluster) Keyring(id string) *auth.Keyring { return e.keys[id] }

// Name is the cluster's name on the bus (its subjects' prefix).
func (e *Cluster) Name() string { return e.cluster }

// InProcess is true: the gateway is the cluster's only client and switches its faults.
func (e *Cluster) InProcess() bool { return true }

// TraceConn returns a new in-process connection that sees the cluster's trace subject.
func (e *Cluster) TraceConn() (*nats.Conn, error) { return e.Connect("trace-relay") }

// Describe and Collect make the cluster a Prometheus collector of its replicas' metrics,
// under the names and labels a replica process exports (nodehttp).
func (e *Cluster) Describe(ch chan<- *prometheus.Desc) { e.metrics.Describe(ch) }

// Collect reads the replicas' metrics.
func (e *Cluster) Collect(ch chan<- prometheus.Metric) { e.metrics.Collect(ch) }

// SetFault switches replica id's behaviour.
func (e *Cluster) SetFault(id string, f node.Fault) error {
	e.mu.Lock()
	n := e.nodes[id]
	if n == nil || !slices.Contains(e.ids, id) {
		e.mu.Unlock()
		return fmt.Errorf("gateway: no replica %q in the membership", id)
	}
	e.faults[id] = f
	e.mu.Unlock()
	n.SetFault(f)
	return nil
}

// Close stops the replicas, the connections and the server.
func (e *Cluster) Close() {
	e.cancel()
	e.wg.Wait()
	if e.client != nil {
		e.client.Close()
	}
	e.mu.Lock()
	for _, nc := range e.conns {
		nc.Close()
	}
	e.mu.Unlock()
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
