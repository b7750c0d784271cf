package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
)

// startGateway starts the gateway in network mode and waits until it is ready; one that
// ended at start because its port was taken gets a new port.
func (t *Topology) startGateway(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		p, err := t.tryGateway(ctx)
		if err == nil {
			t.o.Logf("topology: gateway ready at %s", t.GatewayURL())
			return nil
		}
		if p == nil || attempt == portAttempts || !portTaken(p) {
			return err
		}
		t.o.Logf("topology: gateway lost its HTTP port: %v", err)
	}
}

// tryGateway starts the gateway on a free port and waits until /readyz answers 200.
func (t *Topology) tryGateway(ctx context.Context) (*Process, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	return t.runGateway(ctx, ports[0], t.o.Replicas)
}

// runGateway starts the gateway on port, sending to ids, and waits until /readyz
// answers 200.
func (t *Topology) runGateway(ctx context.Context, port int, ids []string) (*Process, error) {
	env := append([]string{
		"PBFT_HTTP_ADDR=" + fmt.Sprintf("127.0.0.1:%d", port),
		"PBFT_NATS_URL=" + t.natsURL(GatewayID),
		"PBFT_NODE_IDS=" + strings.Join(ids, ","),
		"PBFT_CLUSTER=" + t.o.Cluster,
		"PBFT_KEYS_DIR=" + t.keysDir,
		"PBFT_CLIENT_ID=" + GatewayID,
	}, t.o.Env...)
	p, err := spawn(GatewayID, t.b.Gateway, nil, env, filepath.Join(t.logsDir, "gateway.log"), nil, nil)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.gateway, t.gwPort = p, port
	t.mu.Unlock()
	err = poll.Until(ctx, 50*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("gateway exited: %v\n%s", p.waitErr, tail(filepath.Join(t.logsDir, "gateway.log")))
		}
		code, _, err := httpGet(ctx, t.GatewayURL()+"/readyz")
		return err == nil && code == 200, nil
	})
	if err != nil {
		return p, fmt.Errorf("topology: gateway not ready: %w", err)
	}
	return p, nil
}

// GatewayURL is the gateway's base URL (http://127.0.0.1:port), or "" without GatewayHTTP.
func (t *Topology) GatewayURL() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gwPort == 0 {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d", t.gwPort)
}

// GatewayLog returns what the gateway wrote.
func (t *Topology) GatewayLog() string {
	return readLog(filepath.Join(t.logsDir, "gateway.log"))
}

// StdioGateway is a run of cmd/gateway in stdio mode against the topology's replicas.
type StdioGateway struct {
	// ClientID is its PBFT_CLIENT_ID and key pair: GatewayID or one of Options.Clients.
	// Two gateways running at once need two ids.
	ClientID string
	// Stdin and Stdout are its standard input and output (an *os.File is handed to the
	// process as it is); nil means none and its log.
	Stdin  io.Reader
	Stdout io.Writer
	// Env holds extra PBFT_ settings, after Options.Env.
	Env []string
}

// StartStdioGateway starts cmd/gateway in stdio mode with PBFT_NATS_URL (every server,
// with g.ClientID's credentials), PBFT_CLUSTER, PBFT_KEYS_DIR and PBFT_CLIENT_ID, then
// Options.Env and g.Env. Its stderr goes to Dir/logs/stdio-<client id>.log (Process.Log).
// Close kills it if it still runs.
func (t *Topology) StartStdioGateway(g StdioGateway) (*Process, error) {
	if g.ClientID != GatewayID && !slices.Contains(t.o.Clients, g.ClientID) {
		return nil, fmt.Errorf("topology: client %q has no key pair (Options.Clients)", g.ClientID)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errors.New("topology: closed")
	}
	env := append([]string{
		"PBFT_NATS_URL=" + t.natsURL(g.ClientID),
		"PBFT_CLUSTER=" + t.o.Cluster,
		"PBFT_KEYS_DIR=" + t.keysDir,
		"PBFT_CLIENT_ID=" + g.ClientID,
	}, t.o.Env...)
	p, err := spawn("stdio gateway "+g.ClientID, t.b.Gateway, nil, append(env, g.Env...),
		filepath.Join(t.logsDir, "stdio-"+g.ClientID+".log"), g.Stdin, g.Stdout)
	if err != nil {
		return nil, err
	}
	t.stdioGateways = append(t.stdioGateways, p)
	return p, nil
}
