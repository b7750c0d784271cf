package topology

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// GatewayID is the gateway's id: its key pair, its NATS user and PBFT_CLIENT_ID.
const GatewayID = "gateway"

// DefaultStartTimeout bounds Start when its context has no deadline.
const DefaultStartTimeout = 90 * time.Second

// Options describes a topology.
type Options struct {
	// Dir holds keys, configs, logs and data; empty means a temporary directory that
	// Close removes. A Dir of an earlier topology may be reused: its key pairs are kept
	// (so its data dirs stay valid) and its logs are appended to.
	Dir string
	// NATSServers is 1 or 3 (clustered with routes); 0 means 1.
	NATSServers int
	// Replicas are the replica ids, in order (the primary of view v is Replicas[v mod n]).
	Replicas []string
	// Cluster is PBFT_CLUSTER; empty means "pbft".
	Cluster string
	// Auth runs NATS with deploy/k8s/nats/auth.conf's users and permissions.
	Auth bool
	// DataDirs gives each replica PBFT_DATA_DIR=Dir/data/<id>.
	DataDirs bool
	// ProxyNATS puts a Proxy between each replica and NATS (CutReplica, HealReplica).
	ProxyNATS bool
	// GatewayHTTP starts cmd/gateway in network mode.
	GatewayHTTP bool
	// Env holds extra PBFT_ settings (NAME=value) for every replica and the gateway; they
	// override the topology's own.
	Env []string
	// Clients are extra client ids that get a key pair (with Auth each needs a user in
	// auth.conf, e.g. "admin"), for gateways started with StartStdioGateway and the
	// administrator's client.
	Clients []string
	// Logf receives progress messages; nil discards them.
	Logf func(format string, args ...any)
}

// Topology is a running deployment. Its methods may be called from several goroutines.
type Topology struct {
	o          Options
	b          Binaries
	dir        string
	ownDir     bool
	keysDir    string
	logsDir    string
	passwords  map[string]string
	natsEnv    []string
	replicaIDs []string

	mu       sync.Mutex
	nats     []*natsServer
	replicas map[string]*replica
	gwPort   int
	gateway  *Process
	// stdioGateways are the StartStdioGateway runs, for Close to kill.
	stdioGateways []*Process
	closed        bool
}

// Start starts the topology and returns once every NATS server has its routes, every
// replica's /readyz and (with GatewayHTTP) the gateway's /readyz answer 200. On error
// it stops what it started.
func Start(ctx context.Context, b Binaries, o Options) (t *Topology, err error) {
	if o.NATSServers == 0 {
		o.NATSServers = 1
	}
	if o.NATSServers != 1 && o.NATSServers != 3 {
		return nil, fmt.Errorf("topology: NATSServers must be 1 or 3, not %d", o.NATSServers)
	}
	if o.Cluster == "" {
		o.Cluster = "pbft"
	}
	if len(o.Replicas) == 0 {
		return nil, errors.New("topology: no replicas")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStartTimeout)
		defer cancel()
	}
	t = &Topology{o: o, b: b, dir: o.Dir, replicas: map[string]*replica{}, passwords: map[string]string{},
		replicaIDs: slices.Clone(o.Replicas)}
	if t.dir == "" {
		if t.dir, err = os.MkdirTemp("", "pbft-topology-"); err != nil {
			return nil, err
		}
		t.ownDir = true
	}
	defer func() {
		if err != nil {
			t.Close()
			t = nil
		}
	}()
	t.keysDir, t.logsDir = filepath.Join(t.dir, "keys"), filepath.Join(t.dir, "logs")
	for _, d := range []string{t.logsDir, filepath.Join(t.dir, "nats")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return t, err
		}
	}
	principals := append(append(slices.Clone(o.Replicas), GatewayID), o.Clients...)
	var missing []string // keys of an earlier topology in the same Dir are kept
	for _, id := range principals {
		_, errKey := os.Stat(filepath.Join(t.keysDir, id+".key"))
		_, errPub := os.Stat(filepath.Join(t.keysDir, id+".pub"))
		if errKey != nil || errPub != nil {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		if out, err := exec.CommandContext(ctx, b.Replica, append([]string{"keygen", "-dir", t.keysDir}, missing...)...).CombinedOutput(); err != nil {
			return t, fmt.Errorf("topology: keygen: %v\n%s", err, out)
		}
	}
	if o.Auth {
		if err := t.setupAuth(principals); err != nil {
			return t, err
		}
	}
	if err := t.startNATSServers(ctx); err != nil {
		return t, err
	}
	for _, id := range o.Replicas {
		if err := t.addReplica(id); err != nil {
			return t, err
		}
	}
	for _, id := range o.Replicas {
		if err := t.StartReplica(id); err != nil {
			return t, err
		}
	}
	for _, id := range o.Replicas {
		if err := t.waitStarted(ctx, id); err != nil {
			return t, err
		}
	}
	o.Logf("topology: %d replicas ready", len(o.Replicas))
	if o.GatewayHTTP {
		if err := t.startGateway(ctx); err != nil {
			return t, err
		}
	}
	return t, nil
}

// Dir is the topology's directory.
func (t *Topology) Dir() string { return t.dir }

// Replicas returns the replica ids.
func (t *Topology) Replicas() []string { return slices.Clone(t.replicaIDs) }

// NATSServers is the number of NATS servers (Options.NATSServers).
func (t *Topology) NATSServers() int { return t.o.NATSServers }

// Password is id's NATS password ("" without Auth).
func (t *Topology) Password(id string) string { return t.passwords[id] }

// KeysDir holds every principal's key pair.
func (t *Topology) KeysDir() string { return t.keysDir }

// Close kills every process the topology started, closes the proxies and removes Dir if
// Start created it. It is idempotent.
func (t *Topology) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	procs := slices.Clone(t.stdioGateways)
	var proxies []*Proxy
	if t.gateway != nil {
		procs = append(procs, t.gateway)
	}
	for _, r := range t.replicas {
		if r.p != nil {
			procs = append(procs, r.p)
		}
		if r.proxy != nil {
			proxies = append(proxies, r.proxy)
		}
	}
	for _, s := range t.nats {
		if s.p != nil {
			procs = append(procs, s.p)
		}
	}
	t.mu.Unlock()
	var errs error
	for _, p := range procs {
		p.sendKill()
	}
	for _, p := range procs {
		errs = errors.Join(errs, p.waitKilled())
	}
	for _, px := range proxies {
		_ = px.Close()
	}
	if t.ownDir {
		errs = errors.Join(errs, os.RemoveAll(t.dir))
	}
	return errs
}
