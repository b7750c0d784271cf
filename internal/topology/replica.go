package topology

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
)

type replica struct {
	id       string
	httpPort int
	env      []string // the topology's settings; StartReplica appends its extra ones
	proxy    *Proxy
	p        *Process
}

func (t *Topology) addReplica(id string) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	r := &replica{id: id, httpPort: ports[0]}
	natsURL := t.natsURL(id)
	if t.o.ProxyNATS {
		ups := make([]string, len(t.nats))
		for i, s := range t.nats {
			ups[i] = fmt.Sprintf("127.0.0.1:%d", s.port)
		}
		if r.proxy, err = NewProxy(ups...); err != nil {
			return err
		}
		natsURL = t.url(id, r.proxy.Addr())
	}
	r.env = []string{
		"PBFT_NODE_ID=" + id,
		"PBFT_NODE_IDS=" + strings.Join(t.o.Replicas, ","),
		"PBFT_NATS_URL=" + natsURL,
		"PBFT_CLUSTER=" + t.o.Cluster,
		"PBFT_KEYS_DIR=" + t.keysDir,
		"PBFT_HTTP_ADDR=" + fmt.Sprintf("127.0.0.1:%d", r.httpPort),
	}
	if t.o.DataDirs {
		d := t.DataDir(id)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		r.env = append(r.env, "PBFT_DATA_DIR="+d)
	}
	r.env = append(r.env, t.o.Env...)
	t.mu.Lock()
	t.replicas[id] = r
	t.mu.Unlock()
	return nil
}

// waitStarted waits until replica id, just started, is ready; one that ended at start
// because its HTTP port was taken gets a new port and starts again.
func (t *Topology) waitStarted(ctx context.Context, id string) error {
	for attempt := 1; ; attempt++ {
		err := t.WaitReplicaReady(ctx, id)
		if p, perr := t.ReplicaProcess(id); err == nil || attempt == portAttempts || perr != nil || !portTaken(p) {
			return err
		}
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		t.o.Logf("topology: replica %s lost its HTTP port; starting it on %d", id, ports[0])
		t.mu.Lock()
		r := t.replicas[id]
		r.httpPort = ports[0]
		for i, kv := range r.env {
			if strings.HasPrefix(kv, "PBFT_HTTP_ADDR=") {
				r.env[i] = fmt.Sprintf("PBFT_HTTP_ADDR=127.0.0.1:%d", r.httpPort)
			}
		}
		t.mu.Unlock()
		if err := t.StartReplica(id); err != nil {
			return err
		}
	}
}

// DataDir is replica id's PBFT_DATA_DIR with Options.DataDirs: Dir/data/<id>.
func (t *Topology) DataDir(id string) string { return filepath.Join(t.dir, "data", id) }

// ReplicaHTTP is replica id's base URL for /healthz, /readyz and /metrics, or "" for an
// unknown id.
func (t *Topology) ReplicaHTTP(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.replicas[id]
	if !ok {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d", r.httpPort)
}

func (t *Topology) replica(id string) (*replica, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errors.New("topology: closed")
	}
	r, ok := t.replicas[id]
	if !ok {
		return nil, fmt.Errorf("topology: no replica %q", id)
	}
	return r, nil
}

// ReplicaProcess is replica id's latest process (nil before it is started): its exit,
// and its log since that start.
func (t *Topology) ReplicaProcess(id string) (*Process, error) {
	r, err := t.replica(id)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.p == nil {
		return nil, fmt.Errorf("topology: replica %s not started", id)
	}
	return r.p, nil
}

// StartReplica starts replica id (again, after KillReplica: same keys, data dir, ports
// and settings, plus extraEnv) and returns once the process is started; see
// WaitReplicaReady.
func (t *Topology) StartReplica(id string, extraEnv ...string) error {
	r, err := t.replica(id)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.p != nil && !r.p.Exited() {
		return fmt.Errorf("topology: replica %s is running", id)
	}
	p, err := spawn(id, t.b.Replica, nil, append(slices.Clone(r.env), extraEnv...), t.replicaLogPath(id), nil, nil)
	if err != nil {
		return err
	}
	r.p = p
	t.o.Logf("topology: started replica %s (pid %d)", id, p.Pid())
	return nil
}

// WaitReplicaReady waits until replica id's /readyz answers 200, failing early if the
// process exits.
func (t *Topology) WaitReplicaReady(ctx context.Context, id string) error {
	return t.waitReadyz(ctx, id, "ready", func(code int, _ string) bool { return code == 200 })
}

// waitReadyz polls replica id's /readyz until ok says so, failing early if the process
// exits; what names the awaited state in the error.
func (t *Topology) waitReadyz(ctx context.Context, id, what string, ok func(code int, body string) bool) error {
	p, err := t.ReplicaProcess(id)
	if err != nil {
		return err
	}
	url := t.ReplicaHTTP(id) + "/readyz"
	last := ""
	err = poll.Until(ctx, 50*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("replica %s exited: %v\n%s", id, p.waitErr, tail(t.replicaLogPath(id)))
		}
		code, body, err := httpGet(ctx, url)
		last = fmt.Sprintf("%d %q %v", code, body, err)
		return err == nil && ok(code, body), nil
	})
	if err != nil {
		return fmt.Errorf("topology: replica %s not %s: %w (last /readyz: %s)", id, what, err, last)
	}
	return nil
}

func (t *Topology) replicaLogPath(id string) string {
	return filepath.Join(t.logsDir, "replica-"+id+".log")
}

// KillReplica sends SIGKILL to replica id and waits for it to end.
func (t *Topology) KillReplica(id string) error {
	return t.KillReplicas(id)
}

// KillReplicas sends SIGKILL to every replica of ids at once, then waits for each to end.
func (t *Topology) KillReplicas(ids ...string) error {
	var ps []*Process
	for _, id := range ids {
		p, err := t.ReplicaProcess(id)
		if err != nil {
			return err
		}
		if p.Exited() {
			return fmt.Errorf("topology: replica %s is not running", id)
		}
		ps = append(ps, p)
	}
	t.o.Logf("topology: killing replica %s", strings.Join(ids, ", "))
	for _, p := range ps {
		p.sendKill()
	}
	var errs error
	for _, p := range ps {
		errs = errors.Join(errs, p.waitKilled())
	}
	return errs
}

// StopReplica sends SIGSTOP to replica id: it freezes, connections open.
func (t *Topology) StopReplica(id string) error {
	return t.signalReplica(id, "SIGSTOP", syscall.SIGSTOP)
}

// ContReplica sends SIGCONT to replica id.
func (t *Topology) ContReplica(id string) error {
	return t.signalReplica(id, "SIGCONT", syscall.SIGCONT)
}

func (t *Topology) signalReplica(id, name string, sig syscall.Signal) error {
	p, err := t.ReplicaProcess(id)
	if err != nil {
		return err
	}
	t.o.Logf("topology: %s to replica %s", name, id)
	return p.signal(sig)
}

// ReplicaRunning reports whether replica id's process is running (stopped counts).
func (t *Topology) ReplicaRunning(id string) bool {
	p, err := t.ReplicaProcess(id)
	return err == nil && !p.Exited()
}

// CutReplica cuts replica id off NATS: its proxy drops the connection and refuses new
// ones. It needs ProxyNATS.
func (t *Topology) CutReplica(id string) error { return t.setCut(id, true) }

// HealReplica lets replica id reach NATS again.
func (t *Topology) HealReplica(id string) error { return t.setCut(id, false) }

func (t *Topology) setCut(id string, cut bool) error {
	r, err := t.replica(id)
	if err != nil {
		return err
	}
	if r.proxy == nil {
		return errors.New("topology: CutReplica and HealReplica need Options.ProxyNATS")
	}
	if cut {
		t.o.Logf("topology: cutting replica %s off NATS", id)
		r.proxy.Cut()
	} else {
		t.o.Logf("topology: healing replica %s", id)
		r.proxy.Heal()
	}
	return nil
}

// ReplicaLog returns everything replica id wrote on stdout and stderr, across restarts.
func (t *Topology) ReplicaLog(id string) string {
	return readLog(t.replicaLogPath(id))
}

// readLog returns a whole log file, or the error reading it in parentheses.
func readLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}
