package topology

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
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
	// Logf receives progress messages; nil discards them.
	Logf func(format string, args ...any)
}

type natsServer struct {
	port, routePort, monPort int
	conf                     string
	p                        *proc
}

type replica struct {
	id       string
	httpPort int
	env      []string // the topology's settings; StartReplica appends its extra ones
	proxy    *Proxy
	p        *proc
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
	gateway  *proc
	closed   bool
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
	principals := append(slices.Clone(o.Replicas), GatewayID)
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
		if err := t.WaitReplicaReady(ctx, id); err != nil {
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

// setupAuth copies auth.conf next to the NATS configs and makes a password per principal.
func (t *Topology) setupAuth(principals []string) error {
	if t.o.Cluster != "pbft" {
		return fmt.Errorf("topology: auth.conf's permissions are for the cluster \"pbft\", not %q", t.o.Cluster)
	}
	src, err := AuthConfPath()
	if err != nil {
		return err
	}
	conf, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	for _, id := range principals {
		if !strings.Contains(string(conf), fmt.Sprintf("user: %q", id)) {
			return fmt.Errorf("topology: %s has no NATS user %q", src, id)
		}
		buf := make([]byte, 16)
		_, _ = rand.Read(buf)
		t.passwords[id] = hex.EncodeToString(buf)
		t.natsEnv = append(t.natsEnv, PasswordEnv(id)+"="+t.passwords[id])
	}
	return os.WriteFile(filepath.Join(t.dir, "nats", "auth.conf"), conf, 0o644)
}

// freePorts returns n distinct free ports on 127.0.0.1 (free when asked: another
// process may still take one before it is used).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (t *Topology) startNATSServers(ctx context.Context) error {
	n := t.o.NATSServers
	ports, err := freePorts(3 * n)
	if err != nil {
		return err
	}
	for i := range n {
		s := &natsServer{port: ports[3*i], routePort: ports[3*i+1], monPort: ports[3*i+2]}
		var b strings.Builder
		fmt.Fprintf(&b, "server_name: \"nats-%d\"\nlisten: \"127.0.0.1:%d\"\nhttp: \"127.0.0.1:%d\"\n", i, s.port, s.monPort)
		if n > 1 {
			fmt.Fprintf(&b, "cluster {\n  name: \"topology\"\n  listen: \"127.0.0.1:%d\"\n  no_advertise: true\n  routes: [\n", s.routePort)
			for j := range n {
				if j != i {
					fmt.Fprintf(&b, "    \"nats-route://127.0.0.1:%d\"\n", ports[3*j+1])
				}
			}
			b.WriteString("  ]\n}\n")
		}
		if t.o.Auth {
			b.WriteString("include ./auth.conf\n")
		}
		s.conf = filepath.Join(t.dir, "nats", fmt.Sprintf("nats-%d.conf", i))
		if err := os.WriteFile(s.conf, []byte(b.String()), 0o644); err != nil {
			return err
		}
		t.nats = append(t.nats, s)
	}
	for i := range n {
		if err := t.spawnNATS(i); err != nil {
			return err
		}
	}
	for i := range n {
		if err := t.waitNATS(ctx, i); err != nil {
			return err
		}
	}
	t.o.Logf("topology: %d NATS servers up", n)
	return nil
}

func (t *Topology) spawnNATS(i int) error {
	s := t.nats[i]
	p, err := spawn(fmt.Sprintf("nats-%d", i), t.b.NATSServer, []string{"-c", s.conf}, t.natsEnv,
		filepath.Join(t.logsDir, fmt.Sprintf("nats-%d.log", i)))
	if err != nil {
		return err
	}
	s.p = p
	return nil
}

// waitNATS waits until server i is healthy and has a route to every other server.
func (t *Topology) waitNATS(ctx context.Context, i int) error {
	t.mu.Lock()
	s := t.nats[i]
	p := s.p
	want := 0
	for j, o := range t.nats {
		if j != i && o.p != nil && !o.p.exited() {
			want++
		}
	}
	t.mu.Unlock()
	mon := fmt.Sprintf("http://127.0.0.1:%d", s.monPort)
	last := "no answer"
	err := poll(ctx, 20*time.Millisecond, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("nats-%d exited: %v\n%s", i, p.waitErr, tail(filepath.Join(t.logsDir, fmt.Sprintf("nats-%d.log", i))))
		}
		code, body, err := httpGet(ctx, mon+"/routez")
		if err != nil || code != 200 {
			last = fmt.Sprintf("routez: %d %v", code, err)
			return false, nil
		}
		var rz struct {
			NumRoutes int `json:"num_routes"`
			Routes    []struct {
				RemoteName string `json:"remote_name"`
			} `json:"routes"`
		}
		if err := json.Unmarshal([]byte(body), &rz); err != nil {
			return false, err
		}
		peers := map[string]bool{}
		for _, r := range rz.Routes {
			peers[r.RemoteName] = true
		}
		last = fmt.Sprintf("routes to %v", peers)
		return len(peers) >= want, nil
	})
	if err != nil {
		return fmt.Errorf("topology: nats-%d not up: %w (%s)", i, err, last)
	}
	return nil
}

// natsURL is the comma-separated URL list of every server, with id's credentials.
func (t *Topology) natsURL(id string) string {
	urls := make([]string, len(t.nats))
	for i, s := range t.nats {
		urls[i] = t.url(id, fmt.Sprintf("127.0.0.1:%d", s.port))
	}
	return strings.Join(urls, ",")
}

func (t *Topology) url(id, hostport string) string {
	if pw, ok := t.passwords[id]; ok {
		return "nats://" + id + ":" + pw + "@" + hostport
	}
	return "nats://" + hostport
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
		d := filepath.Join(t.dir, "data", id)
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

func (t *Topology) startGateway(ctx context.Context) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	env := append([]string{
		"PBFT_HTTP_ADDR=" + fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"PBFT_NATS_URL=" + t.natsURL(GatewayID),
		"PBFT_NODE_IDS=" + strings.Join(t.o.Replicas, ","),
		"PBFT_CLUSTER=" + t.o.Cluster,
		"PBFT_KEYS_DIR=" + t.keysDir,
		"PBFT_CLIENT_ID=" + GatewayID,
	}, t.o.Env...)
	p, err := spawn(GatewayID, t.b.Gateway, nil, env, filepath.Join(t.logsDir, "gateway.log"))
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.gateway, t.gwPort = p, ports[0]
	t.mu.Unlock()
	err = poll(ctx, 50*time.Millisecond, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("gateway exited: %v\n%s", p.waitErr, tail(filepath.Join(t.logsDir, "gateway.log")))
		}
		code, _, err := httpGet(ctx, t.GatewayURL()+"/readyz")
		return err == nil && code == 200, nil
	})
	if err != nil {
		return fmt.Errorf("topology: gateway not ready: %w", err)
	}
	t.o.Logf("topology: gateway ready at %s", t.GatewayURL())
	return nil
}

// Dir is the topology's directory.
func (t *Topology) Dir() string { return t.dir }

// Replicas returns the replica ids.
func (t *Topology) Replicas() []string { return slices.Clone(t.replicaIDs) }

// NATSServers is the number of NATS servers (Options.NATSServers).
func (t *Topology) NATSServers() int { return t.o.NATSServers }

// GatewayURL is the gateway's base URL (http://127.0.0.1:port), or "" without GatewayHTTP.
func (t *Topology) GatewayURL() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gwPort == 0 {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d", t.gwPort)
}

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

// NATSAddr is server i's client address (host:port).
func (t *Topology) NATSAddr(i int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i < 0 || i >= len(t.nats) {
		return ""
	}
	return fmt.Sprintf("127.0.0.1:%d", t.nats[i].port)
}

// NATSURL is the URL list of every server with id's credentials (none without Auth): what
// a process of that identity connects with.
func (t *Topology) NATSURL(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.natsURL(id)
}

// Password is id's NATS password ("" without Auth).
func (t *Topology) Password(id string) string { return t.passwords[id] }

// KeysDir holds every principal's key pair.
func (t *Topology) KeysDir() string { return t.keysDir }

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
	if r.p != nil && !r.p.exited() {
		return fmt.Errorf("topology: replica %s is running", id)
	}
	p, err := spawn(id, t.b.Replica, nil, append(slices.Clone(r.env), extraEnv...), t.replicaLogPath(id))
	if err != nil {
		return err
	}
	r.p = p
	t.o.Logf("topology: started replica %s (pid %d)", id, p.cmd.Process.Pid)
	return nil
}

// WaitReplicaReady waits until replica id's /readyz answers 200, failing early if the
// process exits.
func (t *Topology) WaitReplicaReady(ctx context.Context, id string) error {
	r, err := t.replica(id)
	if err != nil {
		return err
	}
	t.mu.Lock()
	p := r.p
	t.mu.Unlock()
	if p == nil {
		return fmt.Errorf("topology: replica %s not started", id)
	}
	url := t.ReplicaHTTP(id) + "/readyz"
	last := ""
	err = poll(ctx, 50*time.Millisecond, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("replica %s exited: %v\n%s", id, p.waitErr, tail(t.replicaLogPath(id)))
		}
		code, body, err := httpGet(ctx, url)
		last = fmt.Sprintf("%d %q %v", code, body, err)
		return err == nil && code == 200, nil
	})
	if err != nil {
		return fmt.Errorf("topology: replica %s not ready: %w (last /readyz: %s)", id, err, last)
	}
	return nil
}

func (t *Topology) replicaLogPath(id string) string {
	return filepath.Join(t.logsDir, "replica-"+id+".log")
}

// KillReplica sends SIGKILL to replica id and waits for it to end.
func (t *Topology) KillReplica(id string) error {
	r, err := t.replica(id)
	if err != nil {
		return err
	}
	t.mu.Lock()
	p := r.p
	t.mu.Unlock()
	if p == nil || p.exited() {
		return fmt.Errorf("topology: replica %s is not running", id)
	}
	t.o.Logf("topology: killing replica %s", id)
	return p.kill()
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
	r, err := t.replica(id)
	if err != nil {
		return err
	}
	t.mu.Lock()
	p := r.p
	t.mu.Unlock()
	if p == nil {
		return fmt.Errorf("topology: replica %s not started", id)
	}
	t.o.Logf("topology: %s to replica %s", name, id)
	return p.signal(sig)
}

// ReplicaRunning reports whether replica id's process is running (stopped counts).
func (t *Topology) ReplicaRunning(id string) bool {
	r, err := t.replica(id)
	if err != nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return r.p != nil && !r.p.exited()
}

// CutReplica cuts replica id off NATS: its proxy drops the connection and refuses new
// ones. It needs ProxyNATS.
func (t *Topology) CutReplica(id string) error {
	r, err := t.replica(id)
	if err != nil {
		return err
	}
	if r.proxy == nil {
		return errors.New("topology: CutReplica needs Options.ProxyNATS")
	}
	t.o.Logf("topology: cutting replica %s off NATS", id)
	r.proxy.Cut()
	return nil
}

// HealReplica lets replica id reach NATS again.
func (t *Topology) HealReplica(id string) error {
	r, err := t.replica(id)
	if err != nil {
		return err
	}
	if r.proxy == nil {
		return errors.New("topology: HealReplica needs Options.ProxyNATS")
	}
	t.o.Logf("topology: healing replica %s", id)
	r.proxy.Heal()
	return nil
}

// ReplicaLog returns everything replica id wrote on stdout and stderr, across restarts.
func (t *Topology) ReplicaLog(id string) string {
	b, err := os.ReadFile(t.replicaLogPath(id))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}

// GatewayLog returns what the gateway wrote.
func (t *Topology) GatewayLog() string {
	b, err := os.ReadFile(filepath.Join(t.logsDir, "gateway.log"))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}

// KillNATS sends SIGKILL to NATS server i and waits for it to end.
func (t *Topology) KillNATS(i int) error {
	t.mu.Lock()
	if i < 0 || i >= len(t.nats) || t.closed {
		t.mu.Unlock()
		return fmt.Errorf("topology: no NATS server %d", i)
	}
	p := t.nats[i].p
	t.mu.Unlock()
	if p == nil || p.exited() {
		return fmt.Errorf("topology: NATS server %d is not running", i)
	}
	t.o.Logf("topology: killing NATS server %d", i)
	return p.kill()
}

// StartNATS starts NATS server i again (same ports and config) and waits, at most
// DefaultStartTimeout, until it is healthy and has routes to the other servers (it does
// not wait for routes when some other server is down).
func (t *Topology) StartNATS(i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStartTimeout)
	defer cancel()
	return t.StartNATSContext(ctx, i)
}

// StartNATSContext is StartNATS bounded by ctx.
func (t *Topology) StartNATSContext(ctx context.Context, i int) error {
	t.mu.Lock()
	if i < 0 || i >= len(t.nats) || t.closed {
		t.mu.Unlock()
		return fmt.Errorf("topology: no NATS server %d", i)
	}
	if p := t.nats[i].p; p != nil && !p.exited() {
		t.mu.Unlock()
		return fmt.Errorf("topology: NATS server %d is running", i)
	}
	err := t.spawnNATS(i)
	t.mu.Unlock()
	if err != nil {
		return err
	}
	return t.waitNATS(ctx, i)
}

// Close kills every process the topology started, closes the proxies and removes Dir if
// Start created it. It is idempotent.
func (t *Topology) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	var procs []*proc
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
		errs = errors.Join(errs, p.kill())
	}
	for _, px := range proxies {
		_ = px.Close()
	}
	if t.ownDir {
		errs = errors.Join(errs, os.RemoveAll(t.dir))
	}
	return errs
}

// poll calls cond every interval until it reports done or an error, or ctx ends.
func poll(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

var probeClient = &http.Client{Timeout: 2 * time.Second}

// httpGet GETs url and returns the status and the body.
func httpGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

// tail returns the last lines of a log file.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 40 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
