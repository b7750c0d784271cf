package campaign

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/pbft-nats/pbft/internal/topology"
)

// The real topology is what the nemesis faults.
var _ Cluster = (*topology.Topology)(nil)

// TopologyOptions shape the deployment a campaign runs against.
type TopologyOptions struct {
	Nodes       int // replicas (default 4)
	NATSServers int // 1 or 3 (default 3)
	// Auth runs NATS with the production users and permissions
	// (deploy/k8s/nats/auth.conf). Default: on when auth.conf has a user for every
	// replica id (n <= 8). The replicas reconfigurations add then take the ids it has
	// users for beyond the initial ones (replica-<n> ... replica-7), each once, as the
	// deploy guide's StatefulSet does.
	Auth *bool
	// Dir keeps keys, data and logs ("" means a temporary directory, removed).
	Dir  string
	Env  []string // extra PBFT_ settings for every replica and the gateway
	Logf func(format string, args ...any)
}

// ReplicaIDs are the ids of an n-replica campaign topology.
func ReplicaIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("replica-%d", i)
	}
	return ids
}

// RunTopology builds the binaries, starts a deployment (NATS servers, one process per
// replica with a data dir and a proxy to NATS, the gateway in network mode), runs the
// campaign against it and tears it down. In byzantine mode the last f+1 replicas turn
// Byzantine once the cluster serves (Config.ByzantineFault: replaced by Colluders, or
// restarted with PBFT_FAULT=equivocate or silent), and no other faults are injected.
func RunTopology(ctx context.Context, cfg Config, o TopologyOptions) (*Report, error) {
	if o.Nodes <= 0 {
		o.Nodes = 4
	}
	if o.NATSServers == 0 {
		o.NATSServers = 3
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	ids := ReplicaIDs(o.Nodes)
	users, err := topology.AuthReplicaIDs()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	auth := len(users) >= len(ids) && slices.Equal(users[:len(ids)], ids)
	if o.Auth != nil {
		auth = *o.Auth
	}
	// Reconfigurations need the administrator (its key pair and NATS user "admin") and
	// fresh replica ids: with auth, the replica users of auth.conf not yet taken.
	reconf := !cfg.Byzantine && (slices.ContainsFunc(cfg.Faults, reconfigFault) || slices.ContainsFunc(cfg.Lead, reconfigFault))
	var clients, extraEnv []string
	if reconf {
		clients, extraEnv = []string{AdminID}, []string{"PBFT_ADMIN_ID=" + AdminID}
		if auth {
			cfg.FreshIDs = slices.DeleteFunc(slices.Clone(users), func(id string) bool { return slices.Contains(ids, id) })
		}
	}
	cfg.Nodes, cfg.NATSServers, cfg.NATSAuth = o.Nodes, o.NATSServers, auth
	if cfg.Logf == nil {
		cfg.Logf = o.Logf
	}
	if cfg.Byzantine && !slices.Contains([]FaultKind{"", FaultForge, FaultEquivocate, FaultSilent}, cfg.ByzantineFault) {
		return nil, fmt.Errorf("%w: byzantine fault %q: want forge, equivocate or silent", ErrSetup, cfg.ByzantineFault)
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	bins, err := topology.Build(bctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w: build: %w", ErrSetup, err)
	}
	dir := o.Dir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	env := slices.Concat([]string{"PBFT_LOG_LEVEL=info"}, extraEnv, o.Env)
	top, err := topology.Start(ctx, bins, topology.Options{Dir: dir, NATSServers: o.NATSServers, Replicas: ids,
		Cluster: "pbft", Auth: auth, DataDirs: true, ProxyNATS: true, GatewayHTTP: true, Env: env, Clients: clients, Logf: o.Logf})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	defer top.Close()
	o.Logf("campaign: topology in %s: %d NATS servers, replicas %v, gateway %s, auth %v", top.Dir(), o.NATSServers, ids, top.GatewayURL(), auth)

	if !cfg.Byzantine {
		kv := NewKVClient(top.GatewayURL(), 10*time.Second)
		defer kv.Close()
		settle := func(ctx context.Context, id string) error {
			if err := top.WaitReplicaReady(ctx, id); err != nil {
				return err
			}
			return kv.WaitCaughtUp(ctx, id)
		}
		if reconf {
			rt := &reconfigTopology{Topology: top, logf: o.Logf}
			defer rt.closeAdmin()
			cfg.Digests = digestsOf(top)
			return runWith(ctx, cfg, top.GatewayURL(), rt, settle, top.Dir())
		}
		return runWith(ctx, cfg, top.GatewayURL(), top, settle, top.Dir())
	}

	// Byzantine mode: the cluster serves first; then f+1 replicas turn into colluders.
	f := (o.Nodes - 1) / 3
	colluding := ids[len(ids)-(f+1):]
	kv := NewKVClient(top.GatewayURL(), 10*time.Second)
	defer kv.Close()
	if err := waitServing(ctx, kv, time.Minute); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	for _, id := range colluding {
		if err := top.KillReplica(id); err != nil {
			return nil, err
		}
	}
	switch cfg.ByzantineFault {
	case "", FaultForge:
		cfg.ByzantineFault = FaultForge
		col, err := StartColluders(ColluderConfig{IDs: colluding, Replicas: ids, Cluster: "pbft", KeysDir: top.KeysDir(),
			NATSURL: top.NATSURL})
		if err != nil {
			return nil, fmt.Errorf("%w: colluders: %w", ErrSetup, err)
		}
		defer func() {
			o.Logf("campaign: colluders sent %d forged replies", col.Forged())
			col.Stop()
		}()
		o.Logf("campaign: replicas %v replaced by colluders that forge matching replies (f=%d)", colluding, f)
	case FaultEquivocate, FaultSilent:
		for _, id := range colluding {
			if err := top.StartReplica(id, "PBFT_FAULT="+string(cfg.ByzantineFault)); err != nil {
				return nil, err
			}
		}
		o.Logf("campaign: replicas %v restarted with PBFT_FAULT=%s (f=%d)", colluding, cfg.ByzantineFault, f)
	default:
		return nil, fmt.Errorf("%w: byzantine fault %q: want forge, equivocate or silent", ErrSetup, cfg.ByzantineFault)
	}
	cfg.Faults, cfg.Colluding = nil, colluding
	cfg.Digests = digestsOf(top)
	return runWith(ctx, cfg, top.GatewayURL(), nil, nil, top.Dir())
}

// digestsOf queries the given replicas of top (the members of the final
// configuration) for their state digests as the gateway's identity (the gateway is done
// by then).
func digestsOf(top *topology.Topology) DigestSource {
	return func(ctx context.Context, members []string) []ReplicaDigest {
		return QueryDigests(ctx, top.NATSURL(topology.GatewayID), "pbft", top.KeysDir(), topology.GatewayID, members)
	}
}

// runWith is Run with the settle function of a restarted replica, keeping the
// topology's logs next to the report on failure.
func runWith(ctx context.Context, cfg Config, gatewayURL string, c Cluster, settle func(context.Context, string) error, topDir string) (*Report, error) {
	cfg.settle = settle
	if top, ok := c.(*topology.Topology); ok && cfg.Digests == nil {
		cfg.Digests = digestsOf(top)
	}
	rep, err := Run(ctx, cfg, gatewayURL, c)
	if rep != nil && cfg.Out != "" && (rep.Verdict != "pass" || cfg.Byzantine) {
		copyLogs(filepath.Join(topDir, "logs"), filepath.Join(cfg.Out, "logs"))
	}
	return rep, err
}

// copyLogs copies the processes' logs into the report (best effort).
func copyLogs(from, to string) {
	entries, err := os.ReadDir(from)
	if err != nil {
		return
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return
	}
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(from, e.Name())); err == nil {
			_ = os.WriteFile(filepath.Join(to, e.Name()), b, 0o644)
		}
	}
}
