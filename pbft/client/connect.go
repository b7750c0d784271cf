package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
)

// Options say how Connect joins a cluster over NATS.
type Options struct {
	// NATSURL is the NATS server (comma-separated URLs for a NATS cluster). Required.
	NATSURL string
	// Cluster is the cluster's subject namespace; empty: "pbft".
	Cluster string
	// ID is the client's identity: its key pair is <ID>.key and <ID>.pub in KeysDir, and
	// the replicas know <ID>.pub. Required; not one of Replicas.
	ID string
	// KeysDir holds this client's key pair and the public key of every replica (what
	// `replica keygen` writes). Required.
	KeysDir string
	// Replicas are the cluster's replica ids in order (the primary of view v is
	// Replicas[v mod n]). Required.
	Replicas []string
	// Timeout bounds each request; 0: DefaultTimeout.
	Timeout time.Duration
	// ViewChangeTimeout is the replicas' view-change timeout, which sets how soon an
	// unanswered request is retransmitted to every replica (RetransmitAfter); 0:
	// DefaultViewChangeTimeout.
	ViewChangeTimeout time.Duration
	// NATSOptions are extra connection options: credentials, TLS.
	NATSOptions []nats.Option
	// Logger receives the wait for NATS; nil discards it.
	Logger *slog.Logger
}

// The defaults of Options, those of the replicas and the gateway (PBFT_REQUEST_TIMEOUT,
// PBFT_VIEW_CHANGE_TIMEOUT).
const (
	DefaultTimeout           = 4 * time.Second
	DefaultViewChangeTimeout = 500 * time.Millisecond
	defaultCluster           = "pbft"
)

// ErrOptions reports Options that cannot work.
var ErrOptions = errors.New("client: invalid options")

func (o *Options) check() error {
	switch {
	case o.NATSURL == "":
		return fmt.Errorf("%w: no NATS URL", ErrOptions)
	case o.ID == "":
		return fmt.Errorf("%w: no client id", ErrOptions)
	case o.KeysDir == "":
		return fmt.Errorf("%w: no keys directory", ErrOptions)
	case len(o.Replicas) == 0:
		return fmt.Errorf("%w: no replicas", ErrOptions)
	case slices.Contains(o.Replicas, o.ID):
		return fmt.Errorf("%w: client id %q is also a replica id", ErrOptions, o.ID)
	case o.Timeout < 0 || o.ViewChangeTimeout < 0:
		return fmt.Errorf("%w: negative timeout", ErrOptions)
	}
	seen := map[string]bool{}
	for _, id := range o.Replicas {
		if id == "" || seen[id] {
			return fmt.Errorf("%w: replica ids must be distinct and non-empty: %q", ErrOptions, o.Replicas)
		}
		seen[id] = true
	}
	return nil
}

// Connect joins the cluster o names as client o.ID: it loads the client's keys from
// o.KeysDir, connects to NATS (waiting for it, with backoff, until ctx ends) and returns
// a client that owns the connection; Close closes both.
func Connect(ctx context.Context, o Options) (*Client, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	cluster := cmp.Or(o.Cluster, defaultCluster)
	timeout := cmp.Or(o.Timeout, DefaultTimeout)
	vct := cmp.Or(o.ViewChangeTimeout, DefaultViewChangeTimeout)
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// The replay counters start at the clock, so a restarted client stays above its old ones.
	keys, err := auth.LoadKeyring(o.KeysDir, o.ID, o.Replicas, uint64(time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	nc, err := bus.ConnectWaiting(ctx, o.NATSURL, o.ID, logger, o.NATSOptions...)
	if err != nil {
		return nil, err
	}
	c, err := New(Config{Keys: keys, Replicas: slices.Clone(o.Replicas), Timeout: timeout, Retransmit: RetransmitAfter(vct),
		Connect: func(h bus.Handler) (bus.Transport, error) { return bus.NewNATS(nc, cluster, o.ID, bus.RoleClient, h) }})
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.conn = nc
	return c, nil
}
