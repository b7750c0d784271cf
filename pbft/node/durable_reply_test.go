package node_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/node"
)

// commitGate holds a backup's commits while closed, to order a test's rounds.
type commitGate struct {
	bus.Transport
	mu     sync.Mutex
	closed bool
	held   []func() error
}

func (g *commitGate) Broadcast(kind string, data []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed && carriesCommit(kind, data) {
		data = slices.Clone(data)
		g.held = append(g.held, func() error { return g.Transport.Broadcast(kind, data) })
		return nil
	}
	return g.Transport.Broadcast(kind, data)
}

// carriesCommit reports whether a replica's message of kind is a commit or a bundle
// with one (held whole, the messages bundled with it too).
func carriesCommit(kind string, env []byte) bool {
	if kind != node.KindBundle {
		return kind == pbft.KindCommit.String()
	}
	found := false
	_ = node.SplitBundle(payloadOf(env), func(e []byte) {
		if m, err := pbft.Unmarshal(node.Unframe(e)); err == nil && m.Kind() == pbft.KindCommit {
			found = true
		}
	})
	return found
}

func (g *commitGate) heldCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.held)
}

func (g *commitGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = false
	for _, send := range g.held {
		_ = send()
	}
	g.held = nil
}

// A reply depends on the commits of what it reports executed, not on the records of
// rounds begun after them (issue 19): while the primary's sync of a later round's records
// is held, it still answers the batch whose commit is durable. Before, every message waited
// for every record handed out before it, so under load each batch's answers waited for
// the next round's fsync.
func TestReplyDoesNotWaitForLaterRecords(t *testing.T) {
	dir := t.TempDir()
	var snif *sniffer
	gates := map[string]*commitGate{}
	mc := newMemCluster(t, func(c *node.Config) { c.DataDir = filepath.Join(dir, c.ID) },
		func(tr bus.Transport) bus.Transport {
			if tr.ID() == "n1" {
				snif = &sniffer{Transport: tr}
				return snif
			}
			g := &commitGate{Transport: tr, closed: true}
			gates[tr.ID()] = g
			return g
		})
	gate, c := gateAndRun(t, mc, snif)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	results := make(chan error, 2)
	invoke := func(name string) {
		res, err := c.Invoke(ctx, client.Request{Client: name, Timestamp: 1, Op: []byte("set " + name + "=1")})
		if err == nil && string(res.Value) != "OK" {
			err = fmt.Errorf("%s: %q", name, res.Value)
		}
		results <- err
	}
	syncing := func(what string) {
		t.Helper()
		select {
		case <-gate.syncing:
		case <-ctx.Done():
			t.Fatalf("n1 never synced %s", what)
		}
	}

	go invoke("a")
	// One sync for a: its pre-prepare record is only appended (lazy, walwriter.go), and
	// the sync of its commit record makes both durable.
	syncing("its commit for a")
	gate.release <- struct{}{}
	poll.Eventually(t, 10*time.Second, "the backups committing a (held)", func() bool {
		return gates["n2"].heldCount() > 0 && gates["n3"].heldCount() > 0 && gates["n4"].heldCount() > 0
	})
	// A second round: n1 pre-prepares and commits b, and that sync stays held.
	go invoke("b")
	syncing("its commit for b")
	for _, g := range gates {
		g.open()
	}
	// n1 now has a's commit certificate: it executes a and answers, with b's record
	// still not durable (b's pre-prepare may go, a vote: b's commit may not).
	poll.Eventually(t, 10*time.Second, "n1 answering a while b's pre-prepare syncs", func() bool {
		snif.mu.Lock()
		defer snif.mu.Unlock()
		return slices.Contains(snif.sent, "reply a t1")
	})
	snif.mu.Lock()
	for _, s := range snif.sent {
		var v, n uint64
		var d string
		if _, err := fmt.Sscanf(s, "commit v%d n%d %s", &v, &n, &d); err == nil && n > 1 {
			t.Errorf("n1 sent %q before its sync returned", s)
		}
	}
	snif.mu.Unlock()
	gate.release <- struct{}{}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-gate.syncing:
				gate.release <- struct{}{}
			case <-done:
				return
			}
		}
	}()
	for range 2 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	snif.mu.Lock()
	defer snif.mu.Unlock()
	if len(snif.violations) > 0 {
		t.Fatalf("messages sent before their records were durable: %q", snif.violations)
	}
}
