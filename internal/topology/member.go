package topology

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// AddJoiner adds replica id (AddReplica: a fresh key pair, an empty data dir) to join
// the membership members, and makes PBFT_JOIN=on and PBFT_NODE_IDS=members part of its
// settings, so that a restart (StartReplica after KillReplica) starts it as it first
// started: its log then puts it in the right configuration. StartReplica starts it.
func (t *Topology) AddJoiner(ctx context.Context, id string, members []string) error {
	if err := t.AddReplica(ctx, id); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.replicas[id]
	r.env = append(r.env, "PBFT_JOIN=on", "PBFT_NODE_IDS="+strings.Join(members, ","))
	return nil
}

// WaitJoinerWaiting waits until joiner id runs and awaits its admission: its /readyz
// says it is not a member (so it is connected and its loop runs). A reconfiguration
// must not be sent before: a joiner learns of its admission only from the
// administrator's request, so one that misses it waits for ever.
func (t *Topology) WaitJoinerWaiting(ctx context.Context, id string) error {
	return t.waitReadyz(ctx, id, "awaiting its admission", func(code int, body string) bool {
		return code == 503 && strings.Contains(body, "not a member")
	})
}

// RestartGateway restarts the network-mode gateway on its port with PBFT_NODE_IDS=ids,
// the membership in force after a reconfiguration. A running gateway follows one made
// elsewhere within about a second (it asks the replicas each second), but a request it
// sends before that leaves a joiner without its tag; a restart with the new list avoids
// that window. Requests in flight fail; new ones are refused until it is ready again.
func (t *Topology) RestartGateway(ctx context.Context, ids []string) error {
	t.mu.Lock()
	p, port, closed := t.gateway, t.gwPort, t.closed
	t.mu.Unlock()
	switch {
	case closed:
		return errors.New("topology: closed")
	case p == nil:
		return errors.New("topology: no gateway to restart (Options.GatewayHTTP)")
	}
	if err := p.Kill(); err != nil {
		return fmt.Errorf("topology: restarting the gateway: %w", err)
	}
	t.o.Logf("topology: restarting the gateway on port %d with replicas %v", port, ids)
	if _, err := t.runGateway(ctx, port, ids); err != nil {
		return err
	}
	return nil
}
