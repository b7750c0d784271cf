package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/examples/bank/ledger"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/replica"
)

// local is a bank cluster in this process, for the demo and the tests: an embedded NATS
// server on a free loopback port, keys written to dir as `replica keygen` would, and one
// replica per id built by the replica library from settings alone, exactly as the
// `bank replica` process builds it. Each replica keeps a durable log under dir, so a
// crashed one restarts where it was.
type local struct {
	srv  *server.Server
	dir  string
	ids  []string
	base config.Settings
	log  *slog.Logger

	mu      sync.Mutex
	running map[string]*running
	conns   []*nats.Conn // the clients'
}

type running struct {
	r      *replica.Replica
	app    *ledger.Ledger // touched only on the replica's goroutine (Node().Do)
	cancel context.CancelFunc
	done   chan struct{}
}

// startLocal starts replicas ids with settings base, keys for them and for clients.
func startLocal(ids, clients []string, dir string, base config.Settings, logger *slog.Logger) (*local, error) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{Port: -1})
	if err != nil {
		return nil, err
	}
	l := &local{srv: srv, dir: dir, ids: ids, base: base, log: logger, running: map[string]*running{}}
	for _, id := range append(append([]string{}, ids...), clients...) {
		if err := auth.WriteKeyPair(filepath.Join(dir, "keys"), id); err != nil {
			l.close()
			return nil, err
		}
	}
	for _, id := range ids {
		if err := l.start(id, ""); err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

// settings are replica id's PBFT_ settings.
func (l *local) settings(id, fault string) config.Settings {
	s := l.base
	s.NodeID, s.NodeIDs, s.NATSURL = id, l.ids, l.srv.ClientURL()
	s.KeysDir, s.DataDir = filepath.Join(l.dir, "keys"), filepath.Join(l.dir, "data", id)
	if fault != "" {
		s.Fault = fault
	}
	return s
}

// start runs replica id (again) with a fresh ledger and the built-in fault named (or the
// base settings' one); a restarted replica recovers its ledger from its log and peers.
func (l *local) start(id, fault string) error {
	app := ledger.New()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := replica.New(ctx, l.settings(id, fault), app, replica.WithLogger(l.log.With("replica", id)))
	if err != nil {
		cancel()
		return err
	}
	run := &running{r: r, app: app, cancel: cancel, done: make(chan struct{})}
	l.mu.Lock()
	l.running[id] = run
	l.mu.Unlock()
	go func() {
		defer close(run.done)
		if err := r.Run(ctx); err != nil {
			l.log.Error("replica stopped", "replica", id, "err", err)
		}
	}()
	return nil
}

// crash stops replica id as a killed process would stop: at once, keeping only its log.
func (l *local) crash(id string) {
	l.mu.Lock()
	run := l.running[id]
	delete(l.running, id)
	l.mu.Unlock()
	if run != nil {
		run.cancel()
		<-run.done
	}
}

// do runs fn on running replica id's own goroutine, between two of its events.
func (l *local) do(ctx context.Context, id string, fn func(*pbft.Replica, *ledger.Ledger)) error {
	l.mu.Lock()
	run := l.running[id]
	l.mu.Unlock()
	if run == nil {
		return fmt.Errorf("replica %s is not running", id)
	}
	return run.r.Node().Do(ctx, func(r *pbft.Replica) { fn(r, run.app) })
}

// snapshot is replica id's ledger as it is now.
func (l *local) snapshot(ctx context.Context, id string) (*ledger.Ledger, error) {
	var snap []byte
	if err := l.do(ctx, id, func(_ *pbft.Replica, app *ledger.Ledger) { snap = app.Snapshot() }); err != nil {
		return nil, err
	}
	led := ledger.New()
	return led, led.Restore(snap)
}

// client joins the cluster as id, one of the clients startLocal made keys for.
func (l *local) client(id string) (*client.Client, error) {
	s := l.base
	keys, err := auth.LoadKeyring(filepath.Join(l.dir, "keys"), id, l.ids, uint64(time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	nc, err := bus.Connect(l.srv.ClientURL(), id)
	if err != nil {
		return nil, err
	}
	c, err := client.New(client.Config{Keys: keys, Replicas: l.ids, Timeout: s.RequestTimeout,
		Retransmit: client.RetransmitAfter(s.ViewChangeTimeout),
		Connect: func(h bus.Handler) (bus.Transport, error) {
			return bus.NewNATS(nc, s.Cluster, id, bus.RoleClient, h)
		}})
	if err != nil {
		nc.Close()
		return nil, err
	}
	l.mu.Lock()
	l.conns = append(l.conns, nc)
	l.mu.Unlock()
	return c, nil
}

// close stops every replica, the clients' connections and the server.
func (l *local) close() {
	for _, id := range l.ids {
		l.crash(id)
	}
	l.mu.Lock()
	for _, nc := range l.conns {
		nc.Close()
	}
	l.mu.Unlock()
	l.srv.Shutdown()
	l.srv.WaitForShutdown()
}
