package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
)

type natsServer struct {
	port, routePort, monPort int
	conf                     string
	p                        *Process
}

func (t *Topology) startNATSServers(ctx context.Context) error {
	var err error
	for attempt := 1; attempt <= portAttempts; attempt++ {
		if err = t.tryNATSServers(ctx); err == nil {
			t.o.Logf("topology: %d NATS servers up", len(t.nats))
			return nil
		}
		if !t.natsPortTaken() {
			return err // new ports would not help
		}
		t.o.Logf("topology: NATS start attempt %d failed: %v", attempt, err)
		t.mu.Lock()
		servers := t.nats
		t.nats = nil
		t.mu.Unlock()
		for _, s := range servers {
			if s.p != nil {
				_ = s.p.Kill()
			}
		}
	}
	return err
}

// natsPortTaken reports whether a NATS server ended because a port was taken.
func (t *Topology) natsPortTaken() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.nats {
		if s.p != nil && portTaken(s.p) {
			return true
		}
	}
	return false
}

// tryNATSServers writes the configs on fresh ports, starts every server and waits for
// their routes.
func (t *Topology) tryNATSServers(ctx context.Context) error {
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
		t.mu.Lock()
		t.nats = append(t.nats, s)
		t.mu.Unlock()
	}
	for i := range n {
		t.mu.Lock()
		err := t.spawnNATS(i)
		t.mu.Unlock()
		if err != nil {
			return err
		}
	}
	for i := range n {
		if err := t.waitNATS(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// spawnNATS starts server i; the caller holds t.mu.
func (t *Topology) spawnNATS(i int) error {
	s := t.nats[i]
	p, err := spawn(fmt.Sprintf("nats-%d", i), t.b.NATSServer, []string{"-c", s.conf}, t.natsEnv,
		t.natsLogPath(i), nil, nil)
	if err != nil {
		return err
	}
	s.p = p
	return nil
}

func (t *Topology) natsLogPath(i int) string {
	return filepath.Join(t.logsDir, fmt.Sprintf("nats-%d.log", i))
}

// waitNATS waits until server i is healthy and has a route to every other server.
func (t *Topology) waitNATS(ctx context.Context, i int) error {
	t.mu.Lock()
	s := t.nats[i]
	p := s.p
	want := 0
	for j, o := range t.nats {
		if j != i && o.p != nil && !o.p.Exited() {
			want++
		}
	}
	t.mu.Unlock()
	mon := fmt.Sprintf("http://127.0.0.1:%d", s.monPort)
	last := "no answer"
	err := poll.Until(ctx, 20*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("nats-%d exited: %v\n%s", i, p.waitErr, tail(t.natsLogPath(i)))
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

// natsProcess returns server i's process, or an error for a bad index or a closed
// topology.
func (t *Topology) natsProcess(i int) (*Process, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i < 0 || i >= len(t.nats) || t.closed {
		return nil, fmt.Errorf("topology: no NATS server %d", i)
	}
	return t.nats[i].p, nil
}

// NATSProcess returns NATS server i's process (a benchmark reads its CPU time).
func (t *Topology) NATSProcess(i int) (*Process, error) { return t.natsProcess(i) }

// KillNATS sends SIGKILL to NATS server i and waits for it to end.
func (t *Topology) KillNATS(i int) error {
	p, err := t.natsProcess(i)
	if err != nil {
		return err
	}
	if p == nil || p.Exited() {
		return fmt.Errorf("topology: NATS server %d is not running", i)
	}
	t.o.Logf("topology: killing NATS server %d", i)
	return p.Kill()
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
	if p := t.nats[i].p; p != nil && !p.Exited() {
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
