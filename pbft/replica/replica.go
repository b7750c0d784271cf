// Package replica is the library a Go program uses to replicate its own service: from the
// PBFT_ settings (pbft/config) and its own pbft.Application it builds and runs one PBFT
// replica with everything cmd/replica has: the NATS transport, the keys from
// PBFT_KEYS_DIR, the durable log (PBFT_DATA_DIR), the built-in faults (PBFT_FAULT),
// tracing (PBFT_TRACE), the NATS services framework registration and, on PBFT_HTTP_ADDR,
// /healthz, /readyz, /metrics and pprof.
// cmd/replica is this library running the key-value store; examples/bank runs a ledger.
//
// The package is named for what a program gets from it, a replica of its service
// (replica.Run), beside the protocol core's pbft.Replica, which it drives through
// pbft/node.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/node"
	"github.com/pbft-nats/pbft/pbft/node/nodemicro"
)

// Option changes how New builds a replica.
type Option func(*options)

type options struct {
	logger *slog.Logger
}

// WithLogger sends the replica's logs to logger instead of text on stderr at
// PBFT_LOG_LEVEL.
func WithLogger(logger *slog.Logger) Option { return func(o *options) { o.logger = logger } }

// Replica is one replica of an application, connected and ready to Run.
type Replica struct {
	s     config.Settings
	node  *node.Node
	nc    *nats.Conn
	web   *httpServer   // nil without PBFT_HTTP_ADDR
	micro micro.Service // the replica in the NATS services framework (nodemicro)
	log   *slog.Logger
}

// Run builds the replica s describes around app (New) and runs it until ctx ends (Run).
// It first applies the settings of the process (PBFT_MAX_PROCS, PBFT_GC_HEAP_MB:
// tuneProcess): Run is a process's replica.
func Run(ctx context.Context, s config.Settings, app pbft.Application, opts ...Option) error {
	tuneProcess(s)
	r, err := New(ctx, s, app, opts...)
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

// New checks the settings (from config.Load, or config.Default with fields set;
// PBFT_NODE_ID, PBFT_NODE_IDS, PBFT_NATS_URL and PBFT_KEYS_DIR are required), loads the
// replica's keys, connects to NATS (waiting for it, with backoff, until ctx ends) and
// builds the replica around app, restoring it from PBFT_DATA_DIR if that holds a log. app
// must be fresh: the replica owns it from now on (see pbft.Application). It registers
// with the NATS services framework as pbft-replica (package nodemicro). With
// PBFT_HTTP_ADDR it serves HTTP from before it waits for NATS: /healthz alive, /readyz
// 503 saying what it waits for, then the replica's endpoints (package nodehttp). With
// PBFT_JOIN=on the replica joins a running cluster as a member of PBFT_NODE_IDS once the
// administrator's (PBFT_ADMIN_ID) reconfiguration admits it; /readyz says not ready
// until then. Run releases what New holds.
func New(ctx context.Context, s config.Settings, app pbft.Application, opts ...Option) (*Replica, error) {
	if app == nil {
		return nil, errors.New("replica: no application")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.NodeID == "" || len(s.NodeIDs) == 0 {
		return nil, errors.New("PBFT_NODE_ID and PBFT_NODE_IDS are required")
	}
	if s.NATSURL == "" {
		return nil, errors.New("PBFT_NATS_URL is required: replicas of a cluster meet on a shared NATS server")
	}
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		level, _ := config.ParseLevel(s.LogLevel)
		o.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("replica", s.NodeID)
	}
	keys, err := auth.LoadKeyring(s.KeysDir, s.NodeID, s.NodeIDs, uint64(time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	cfg, err := node.FromSettings(s, s.NodeID, s.NodeIDs, keys, o.logger)
	if err != nil {
		return nil, err
	}
	cfg.App = app
	natsOpts, err := s.NATSOptions()
	if err != nil {
		return nil, err
	}
	r := &Replica{s: s, log: o.logger}
	if s.HTTPAddr != "" {
		// Serve /healthz while waiting for NATS, so that a liveness probe keeps the pod.
		if r.web, err = startHTTP(s.HTTPAddr, bool(s.Pprof), "NATS at "+bus.RedactURLs(s.NATSURL), o.logger); err != nil {
			return nil, err
		}
	}
	// A pod may start before NATS: wait for it (logged, capped backoff) until ctx ends.
	r.nc, err = bus.ConnectWaiting(ctx, s.NATSURL, s.NodeID, o.logger, natsOpts...)
	if err != nil {
		r.release()
		return nil, err
	}
	r.node, err = node.New(cfg, func(h bus.Handler) (bus.Transport, error) {
		return bus.NewNATS(r.nc, s.Cluster, s.NodeID, bus.RoleReplica, h)
	})
	if err != nil {
		r.release()
		return nil, err
	}
	if r.micro, err = nodemicro.Register(r.nc, r.node, s.Cluster, s.NodeIDs); err != nil {
		r.release()
		return nil, fmt.Errorf("registering with the NATS services framework: %w", err)
	}
	if r.web != nil {
		r.web.serveNode(r.node, r.nc)
	}
	return r, nil
}

// release closes what New opened: the NATS connection and the HTTP server.
func (r *Replica) release() {
	if r.micro != nil {
		_ = r.micro.Stop()
	}
	if r.web != nil {
		r.web.stop()
	}
	if r.nc != nil {
		r.nc.Close()
	}
}

// Node is the replica's driver: its status, counters and built-in fault switch.
func (r *Replica) Node() *node.Node { return r.node }

// HTTPAddr is where the replica serves HTTP (the port chosen for PBFT_HTTP_ADDR
// 127.0.0.1:0), nil without PBFT_HTTP_ADDR.
func (r *Replica) HTTPAddr() net.Addr {
	if r.web == nil {
		return nil
	}
	return r.web.addr
}

// Run runs the replica until ctx ends; then it stops the HTTP server and closes the NATS
// connection. It returns nil
// on a clean stop, an error if the replica could not keep its durable log. Call it once.
func (r *Replica) Run(ctx context.Context) error {
	defer r.release()
	r.log.Info("replica started", "nodes", r.s.NodeIDs, "nats", bus.RedactURLs(r.s.NATSURL), "cluster", r.s.Cluster)
	err := r.node.Run(ctx)
	r.log.Info("replica stopped")
	return err
}
