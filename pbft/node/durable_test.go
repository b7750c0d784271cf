package node_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/node"
)

// gatedLog is a durable log whose syncs finish only when the test lets them: it reports
// each sync on syncing and waits for release. It knows which records are durable.
type gatedLog struct {
	node.DurableLog
	syncing chan int // the number of records the sync will make durable
	release chan struct{}
	open    chan struct{} // closed when the test ends: no sync waits any more

	mu      sync.Mutex
	written []string          // records appended (keys), in order
	commits map[string]uint64 // the numbers of the commit records among written
	durable map[string]bool
	syncs   int
}

func newGatedLog(inner node.DurableLog) *gatedLog {
	return &gatedLog{DurableLog: inner, syncing: make(chan int), release: make(chan struct{}), open: make(chan struct{}),
		durable: map[string]bool{}, commits: map[string]uint64{}}
}

// recordKey names what a message commits its sender to: its kind, view, number, digest.
func recordKey(m pbft.Message) string {
	switch m := m.(type) {
	case *pbft.PrePrepare:
		return fmt.Sprintf("pre-prepare v%d n%d %x", m.View, m.Seq, m.Digest[:4])
	case *pbft.Commit:
		return fmt.Sprintf("commit v%d n%d %x", m.View, m.Seq, m.Digest[:4])
	}
	return ""
}

func (g *gatedLog) Append(recs ...[]byte) error {
	g.mu.Lock()
	for _, b := range recs {
		if m, err := pbft.Unmarshal(b); err == nil {
			g.written = append(g.written, recordKey(m))
			if c, ok := m.(*pbft.Commit); ok {
				g.commits[recordKey(m)] = c.Seq
			}
		}
	}
	g.mu.Unlock()
	return g.DurableLog.Append(recs...)
}

func (g *gatedLog) Sync() error {
	g.mu.Lock()
	covered := append([]string(nil), g.written...)
	g.syncs++
	g.mu.Unlock()
	select {
	case g.syncing <- len(covered):
		select {
		case <-g.release:
		case <-g.open:
		}
	case <-g.open:
	}
	err := g.DurableLog.Sync()
	g.mu.Lock()
	for _, k := range covered {
		g.durable[k] = true
	}
	g.mu.Unlock()
	return err
}

func (g *gatedLog) Rewrite(recs ...[]byte) error {
	err := g.DurableLog.Rewrite(recs...)
	g.mu.Lock()
	for _, b := range recs {
		if m, err := pbft.Unmarshal(b); err == nil {
			g.durable[recordKey(m)] = true
		}
	}
	g.mu.Unlock()
	return err
}

// commitsUpTo lists the commit records appended for numbers up to seq: what a reply for
// seq reports the execution of.
func (g *gatedLog) commitsUpTo(seq uint64) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for k, s := range g.commits {
		if s <= seq {
			out = append(out, k)
		}
	}
	return out
}

func (g *gatedLog) isDurable(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.durable[key]
}

// sniffer records what a node hands its transport, and checks each message against the
// log at that moment.
type sniffer struct {
	bus.Transport
	log *gatedLog

	mu         sync.Mutex
	sent       []string // "kind v n" in the order handed over
	violations []string
}

// payloadOf takes the payload out of a sealed envelope (bus/auth's layout).
func payloadOf(env []byte) []byte {
	d := env[2:]
	take := func() []byte {
		n, k := binary.Uvarint(d)
		b := d[k : k+int(n)]
		d = d[k+int(n):]
		return b
	}
	take() // sender
	_, k := binary.Uvarint(d)
	d = d[k:] // counter
	return take()
}

func (s *sniffer) note(kind string, env []byte) {
	var msgs []pbft.Message
	payload := payloadOf(env)
	if kind == node.KindReplies {
		reps, _ := node.DecodeReplies(payload)
		for _, r := range reps {
			msgs = append(msgs, r)
		}
	} else if kind == node.KindAnswer {
		msgs = append(msgs, nil)
	} else if kind == node.KindBundle {
		_ = node.SplitBundle(payload, func(e []byte) {
			if m, err := pbft.Unmarshal(node.Unframe(e)); err == nil {
				msgs = append(msgs, m)
			}
		})
	} else if m, err := pbft.Unmarshal(node.Unframe(payload)); err == nil {
		msgs = append(msgs, m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		var deps []string
		switch m := m.(type) {
		case *pbft.PrePrepare:
			// A vote: it may go before its record is durable (pbft/durable.go).
			s.sent = append(s.sent, recordKey(m))
		case *pbft.Commit:
			// A commit marks a prepared certificate: its record and its pre-prepare's
			// must be durable first.
			pp := &pbft.PrePrepare{View: m.View, Seq: m.Seq, Digest: m.Digest}
			deps = []string{recordKey(m), recordKey(pp)}
			s.sent = append(s.sent, recordKey(m))
		case *pbft.Reply:
			// A reply follows the execution that the replica's own commit allowed.
			s.sent = append(s.sent, fmt.Sprintf("reply %s t%d", m.Client, m.Timestamp))
			deps = s.log.commitsUpTo(m.Seq)
		case nil:
			s.sent = append(s.sent, kind)
		}
		for _, d := range deps {
			if !s.log.isDurable(d) {
				s.violations = append(s.violations, d+" sent before its record was durable")
			}
		}
	}
}

func (s *sniffer) Send(to, kind string, data []byte) error {
	s.note(kind, data)
	return s.Transport.Send(to, kind, data)
}

func (s *sniffer) Broadcast(kind string, data []byte) error {
	s.note(kind, data)
	return s.Transport.Broadcast(kind, data)
}

// The durable log is written off the node's loop (issue 19): while the primary's sync is
// held, its loop still steps and answers queries; it sends its pre-prepare (a vote goes
// before its record is durable) but nothing else that depends on the records being
// synced; once released, its commits go out, each after its record's and its
// pre-prepare's fsync returned, and each reply after the commit records of its number
// and below.
func TestDurableLogHoldsMessagesUntilSynced(t *testing.T) {
	dir := t.TempDir()
	var snif *sniffer
	mc := newMemCluster(t, func(c *node.Config) { c.DataDir = filepath.Join(dir, c.ID) },
		func(tr bus.Transport) bus.Transport {
			if tr.ID() != "n1" {
				return tr
			}
			snif = &sniffer{Transport: tr}
			return snif
		})
	gate, c := gateAndRun(t, mc, snif)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const requests = 8
	results := make(chan error, requests)
	invoke := func(i int) {
		op := []byte(fmt.Sprintf("set k%d=%d", i, i))
		res, err := c.Invoke(ctx, client.Request{Client: fmt.Sprintf("c%d", i), Timestamp: 1, Op: op})
		if err == nil && string(res.Value) != "OK" {
			err = fmt.Errorf("request %d: %q", i, res.Value)
		}
		results <- err
	}
	for i := range requests / 2 {
		go invoke(i)
	}
	// The first sync: n1 sent its pre-prepare before its record was durable (a vote;
	// the record is not even synced on its own, walwriter.go); the backups prepared it,
	// and n1's commit waits for this sync.
	select {
	case <-gate.syncing:
	case <-ctx.Done():
		t.Fatal("n1 never synced its log")
	}
	poll.Eventually(t, 10*time.Second, "n1 sending its pre-prepare while its record syncs", func() bool {
		snif.mu.Lock()
		defer snif.mu.Unlock()
		return len(snif.sent) > 0 && strings.HasPrefix(snif.sent[0], "pre-prepare")
	})
	// Its loop keeps stepping while the sync is held: it takes the other requests (a
	// second batch, whose pre-prepare waits behind the first) and answers a query.
	for i := requests / 2; i < requests; i++ {
		go invoke(i)
	}
	poll.Eventually(t, 10*time.Second, "n1 stepping requests while its log syncs", func() bool {
		return mc.nodes["n1"].Stats().In["request"] >= requests
	})
	// A query's answer shows the replica's state: it too waits for the sync.
	answered := make(chan error, 1)
	go func() {
		a, err := c.Query(ctx, "n1", &node.Query{Op: node.OpInfo})
		if err == nil && a.Primary != "n1" {
			err = fmt.Errorf("answer %+v", a)
		}
		answered <- err
	}()
	// Do runs on n1's loop after the iteration that stepped the requests (and handed
	// their pre-prepare to the writer) ended.
	if err := mc.nodes["n1"].Do(ctx, func(*pbft.Replica) {}); err != nil {
		t.Fatalf("n1's loop did not run while its log synced: %v", err)
	}
	snif.mu.Lock()
	early := append([]string(nil), snif.sent...)
	snif.mu.Unlock()
	for _, m := range early {
		if !strings.HasPrefix(m, "pre-prepare") {
			t.Fatalf("n1 sent %q before its first sync returned: only pre-prepares may go", early)
		}
	}
	gate.release <- struct{}{}
	// Let every later sync through; the sniffer checks each message as it is sent.
	done := make(chan struct{})
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
	for range requests {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-answered; err != nil {
		t.Fatalf("query: %v", err)
	}
	poll.Eventually(t, 10*time.Second, "n1 replying to every request", func() bool {
		snif.mu.Lock()
		defer snif.mu.Unlock()
		replies := 0
		for _, s := range snif.sent {
			if strings.HasPrefix(s, "reply") {
				replies++
			}
		}
		return replies >= requests
	})
	close(done)
	snif.mu.Lock()
	defer snif.mu.Unlock()
	if len(snif.violations) > 0 {
		t.Fatalf("messages sent before their records were durable: %q", snif.violations)
	}
	// In order: pre-prepares by increasing number, each number's commit after its
	// pre-prepare, and replies only after the commit of a batch.
	var lastPP uint64
	commits := 0
	seenPP := map[uint64]bool{}
	for _, s := range snif.sent {
		var v, n uint64
		var d string
		if _, err := fmt.Sscanf(s, "pre-prepare v%d n%d %s", &v, &n, &d); err == nil {
			if seenPP[n] {
				continue // the same pre-prepare sent to another peer (one send per peer)
			}
			if n <= lastPP {
				t.Fatalf("pre-prepare %d sent after %d: %q", n, lastPP, snif.sent)
			}
			lastPP, seenPP[n] = n, true
		} else if _, err := fmt.Sscanf(s, "commit v%d n%d %s", &v, &n, &d); err == nil {
			if !seenPP[n] {
				t.Fatalf("commit %d sent before its pre-prepare: %q", n, snif.sent)
			}
			commits++
		} else if strings.HasPrefix(s, "reply") && commits == 0 {
			t.Fatalf("a reply sent before any commit: %q", snif.sent)
		}
	}
	gate.mu.Lock()
	syncs := gate.syncs
	gate.mu.Unlock()
	if lastPP < 2 || syncs < 2 {
		t.Fatalf("n1 sent pre-prepares up to %d in %d syncs, want two batches at least: %q", lastPP, syncs, snif.sent)
	}
	t.Logf("n1: %q in %d syncs", snif.sent, syncs)
}

// failingLog fails every sync, as a full or vanished disk does.
type failingLog struct{ node.DurableLog }

func (failingLog) Sync() error { return errors.New("no space left on device") }

// A replica that cannot make its records durable stops with the error instead of
// sending what depends on them.
func TestNodeStopsWhenTheLogFails(t *testing.T) {
	dir := t.TempDir()
	var snif *sniffer
	mc := newMemCluster(t, func(c *node.Config) { c.DataDir = filepath.Join(dir, c.ID) },
		func(tr bus.Transport) bus.Transport {
			if tr.ID() == "n1" {
				snif = &sniffer{Transport: tr, log: newGatedLog(nil)}
				return snif
			}
			return tr
		})
	n1 := mc.nodes["n1"]
	node.WrapDurableLog(n1, func(l node.DurableLog) node.DurableLog { return failingLog{l} })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- n1.Run(ctx) }()
	c, err := client.New(client.Config{Keys: mc.keys["reader"], Replicas: mc.ids, Timeout: time.Second,
		Connect: func(h bus.Handler) (bus.Transport, error) { return mc.hub.Join("reader", bus.RoleClient, h) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Send("n1", c.NewRequest("c1", 1, []byte("set x=1"))); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-stopped:
		if err == nil || !strings.Contains(err.Error(), "durable log") || !strings.Contains(err.Error(), "no space") {
			t.Fatalf("n1 stopped with %v, want the log's error", err)
		}
	case <-ctx.Done():
		t.Fatal("n1 kept running on a log that cannot sync")
	}
	snif.mu.Lock()
	defer snif.mu.Unlock()
	for _, s := range snif.sent {
		if !strings.HasPrefix(s, "pre-prepare") { // a vote goes before its record is durable
			t.Fatalf("n1 sent %s although its records never became durable", s)
		}
	}
}

// gateAndRun puts a gatedLog under n1's durable log (the sniffer checks sends against it),
// runs the cluster, and returns the gate and a client "reader" of it. The gate opens
// when the test ends, before the cluster stops, so n1 ends unblocked.
func gateAndRun(t *testing.T, mc *memCluster, snif *sniffer) (*gatedLog, *client.Client) {
	t.Helper()
	var gate *gatedLog
	node.WrapDurableLog(mc.nodes["n1"], func(l node.DurableLog) node.DurableLog { gate = newGatedLog(l); return gate })
	snif.log = gate
	t.Cleanup(func() { close(gate.open) })
	mc.run()
	c, err := client.New(client.Config{Keys: mc.keys["reader"], Replicas: mc.ids, Timeout: 15 * time.Second,
		Retransmit: time.Second,
		Connect:    func(h bus.Handler) (bus.Transport, error) { return mc.hub.Join("reader", bus.RoleClient, h) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return gate, c
}
