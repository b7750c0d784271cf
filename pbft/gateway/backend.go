package gateway

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway/settle"
)

// ErrNotEmbedded reports a fault switch against replicas this process does not run.
var ErrNotEmbedded = errors.New("gateway: faults can only be injected into the embedded cluster")

// Backend is the cluster a gateway talks to: replicas it runs itself (package embedded),
// or replicas run by cmd/replica behind an external NATS (External). Its settle policy
// says how long each answer waits and for whom.
type Backend interface {
	Client() *client.Client
	settle.Policy
	// InProcess reports whether the replicas run in this process: the gateway is then
	// their only client, and may switch their faults.
	InProcess() bool
	// SetFault switches a replica's behaviour (in-process replicas only).
	SetFault(id string, f pbft.Fault) error
	Close()
}

// traceConner is a backend that can show the cluster's trace subject.
type traceConner interface {
	TraceConn() (*nats.Conn, error)
}

// External is a gateway client of replicas run elsewhere, over a NATS server at a URL.
type External struct {
	nc     *nats.Conn
	client *client.Client
	admin  string        // PBFT_ADMIN_ID: the gateway may reconfigure when it is its identity
	wait   time.Duration // PBFT_REQUEST_TIMEOUT, for the settle policy
	// stopLearning ends learnConfiguration (discover_external.go); nil when not started.
	stopLearning func()
}

// ConnectExternal joins the cluster of replicas ids behind the NATS server at url, with
// the gateway's keys from PBFT_KEYS_DIR.
func ConnectExternal(url string, ids []string, s config.Settings) (*External, error) {
	return connectExternal(ids, s, func(opts []nats.Option) (*nats.Conn, error) {
		return bus.Connect(url, s.ClientID, opts...)
	})
}

// ConnectExternalWaiting is ConnectExternal for a gateway that may start before NATS
// is reachable: it waits for NATS (bus.ConnectWaiting) until ctx ends.
func ConnectExternalWaiting(ctx context.Context, url string, ids []string, s config.Settings, logger *slog.Logger) (*External, error) {
	return connectExternal(ids, s, func(opts []nats.Option) (*nats.Conn, error) {
		return bus.ConnectWaiting(ctx, url, s.ClientID, logger, opts...)
	})
}

func connectExternal(ids []string, s config.Settings, connect func([]nats.Option) (*nats.Conn, error)) (*External, error) {
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
	c, err := client.New(client.Config{Keys: keys, Replicas: ids, Timeout: s.RequestTimeout,
		Retransmit: client.RetransmitAfter(s.ViewChangeTimeout),
		Connect: func(h bus.Handler) (bus.Transport, error) {
			return bus.NewNATS(nc, s.Cluster, s.ClientID, bus.RoleClient, h)
		}})
	if err != nil {
		nc.Close()
		return nil, err
	}
	x := &External{nc: nc, client: c, admin: s.AdminID, wait: s.RequestTimeout}
	x.learnConfiguration()
	return x, nil
}

// Plan waits for the members of the configuration the client follows, which changes with
// a reconfiguration (reconfigure_external.go, client.Discover).
func (x *External) Plan() settle.Plan {
	_, ids := x.client.Configuration()
	return settle.AfterQuorum(ids, x.wait).Plan()
}

// Client returns the gateway's bus client.
func (x *External) Client() *client.Client { return x.client }

// InProcess is false.
func (x *External) InProcess() bool { return false }

// SetFault is not possible against external replicas.
func (x *External) SetFault(string, pbft.Fault) error { return ErrNotEmbedded }

// TraceConn is the gateway's own connection.
func (x *External) TraceConn() (*nats.Conn, error) { return x.nc, nil }

// Close leaves the bus.
func (x *External) Close() {
	if x.stopLearning != nil {
		x.stopLearning()
	}
	x.client.Close()
	x.nc.Close()
}
