package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/node"
)

// ErrNotEmbedded reports a fault switch against replicas this process does not run.
var ErrNotEmbedded = errors.New("gateway: faults can only be injected into the embedded cluster")

// Backend is the cluster a gateway talks to: replicas it runs itself (Embedded), or
// replicas run by cmd/replica behind an external NATS (External).
type Backend interface {
	Client() *Client
	// SetFault switches a replica's behaviour (embedded only).
	SetFault(id string, f node.Fault) error
	// Fault returns a replica's behaviour as far as the gateway knows it.
	Fault(id string) node.Fault
	// Embedded reports whether the gateway knows the replicas' faults for certain.
	Embedded() bool
	Close()
}

// Embedded is a whole cluster in this process: an in-process NATS server, one replica
// per id, each on its own connection, and the gateway's client.
type Embedded struct {
	srv     *server.Server
	nodes   map[string]*node.Node
	conns   []*nats.Conn
	client  *Client
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	faults  map[string]node.Fault
	keys    map[string]*auth.Keyring // kept for tests that play a Byzantine replica
	cluster string
}

// StartEmbedded starts the cluster of replicas ids with settings s.
func StartEmbedded(ids []string, s config.Settings, logger *slog.Logger) (*Embedded, error) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{MaxPayload: int32(s.EmbeddedMaxPayload)})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Embedded{srv: srv, nodes: map[string]*node.Node{}, cancel: cancel, faults: map[string]node.Fault{}}
	fail := func(err error) (*Embedded, error) {
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
		cfg, err := s.Node(id, ids, keys[id], logger.With("replica", id))
		if err != nil {
			return fail(err)
		}
		n, err := node.New(cfg, e.connect(s.Cluster, id, bus.RoleReplica))
		if err != nil {
			return fail(fmt.Errorf("replica %s: %w", id, err))
		}
		e.nodes[id] = n
		e.faults[id] = cfg.Fault
		e.wg.Add(1)
		go func() { defer e.wg.Done(); _ = n.Run(ctx) }()
	}
	c, err := NewClient(keys[s.ClientID], e.connect(s.Cluster, s.ClientID, bus.RoleClient))
	if err != nil {
		return fail(err)
	}
	e.client = c
	return e, nil
}

func (e *Embedded) connect(cluster, id string, role bus.Role) func(bus.Handler) (bus.Transport, error) {
	return func(h bus.Handler) (bus.Transport, error) {
		nc, err := bus.ConnectInProcess(e.srv, id)
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		e.conns = append(e.conns, nc)
		e.mu.Unlock()
		return bus.NewNATS(nc, cluster, id, role, h)
	}
}

// Client returns the gateway's bus client.
func (e *Embedded) Client() *Client { return e.client }

// Node returns the replica id, or nil.
func (e *Embedded) Node(id string) *node.Node { return e.nodes[id] }

// Embedded is true.
func (e *Embedded) Embedded() bool { return true }

// SetFault switches replica id's behaviour.
func (e *Embedded) SetFault(id string, f node.Fault) error {
	n := e.nodes[id]
	if n == nil {
		return fmt.Errorf("gateway: no replica %q", id)
	}
	e.mu.Lock()
	e.faults[id] = f
	e.mu.Unlock()
	n.SetFault(f)
	return nil
}

// Fault returns replica id's behaviour.
func (e *Embedded) Fault(id string) node.Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f, ok := e.faults[id]; ok {
		return f
	}
	return node.FaultNone
}

// Close stops the replicas, the connections and the server.
func (e *Embedded) Close() {
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

// External is a gateway client of replicas run elsewhere, over a NATS server at a URL.
type External struct {
	nc     *nats.Conn
	client *Client
}

// ConnectExternal joins the cluster of replicas ids behind the NATS server at url, with
// the gateway's keys from PBFT_KEYS_DIR.
func ConnectExternal(url string, ids []string, s config.Settings) (*External, error) {
	return connectExternal(url, ids, s, func(opts []nats.Option) (*nats.Conn, error) {
		return bus.Connect(url, s.ClientID, opts...)
	})
}

// ConnectExternalWaiting is ConnectExternal for a gateway that may start before NATS
// is reachable: it waits for NATS (bus.ConnectWaiting) until ctx ends.
func ConnectExternalWaiting(ctx context.Context, url string, ids []string, s config.Settings, logger *slog.Logger) (*External, error) {
	return connectExternal(url, ids, s, func(opts []nats.Option) (*nats.Conn, error) {
		return bus.ConnectWaiting(ctx, url, s.ClientID, logger, opts...)
	})
}

func connectExternal(url string, ids []string, s config.Settings, connect func([]nats.Option) (*nats.Conn, error)) (*External, error) {
	keys, err := auth.LoadKeyring(s.KeysDir, s.ClientID, ids, uint64(time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	natsOpts, err := s.NATSOptions()
	if err != nil {
		return nil, err
	}
	nc, err := connect(natsOpts)
	if err != nil {
		return nil, err
	}
	c, err := NewClient(keys, func(h bus.Handler) (bus.Transport, error) {
		return bus.NewNATS(nc, s.Cluster, s.ClientID, bus.RoleClient, h)
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &External{nc: nc, client: c}, nil
}

// Client returns the gateway's bus client.
func (x *External) Client() *Client { return x.client }

// SetFault is not possible against external replicas.
func (x *External) SetFault(string, node.Fault) error { return ErrNotEmbedded }

// Fault is unknown for external replicas: they are all treated as live.
func (x *External) Fault(string) node.Fault { return node.FaultNone }

// Embedded is false.
func (x *External) Embedded() bool { return false }

// Close leaves the bus.
func (x *External) Close() {
	x.client.Close()
	x.nc.Close()
}
