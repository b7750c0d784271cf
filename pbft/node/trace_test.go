package node_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/node"
	"github.com/pbft-nats/pbft/pbft/trace"
)

// tracingTransport adds trace publishing to the in-memory transport and records what
// is published.
type tracingTransport struct {
	bus.Transport
	mu     *sync.Mutex
	events *[]trace.Event
	err    *error
}

func (t tracingTransport) PublishTrace(data []byte) error {
	evs, err := trace.Decode(data)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil && *t.err == nil {
		*t.err = err
	}
	*t.events = append(*t.events, evs...)
	return nil
}

type traceCluster struct {
	mu     sync.Mutex
	events []trace.Event
	err    error
	client *client.Client
	stop   func()
}

func (c *traceCluster) snapshot() []trace.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]trace.Event(nil), c.events...)
}

// startTraced runs four replicas over the in-memory hub with tracing on or off.
func startTraced(t *testing.T, on bool) *traceCluster {
	c := &traceCluster{}
	mc := newMemCluster(t, func(cfg *node.Config) { cfg.Trace = on }, func(tr bus.Transport) bus.Transport {
		return tracingTransport{Transport: tr, mu: &c.mu, events: &c.events, err: &c.err}
	})
	mc.run()
	c.client, c.stop = mc.client, mc.stop
	return c
}

// execute orders one request and waits until every replica has executed it.
func (c *traceCluster) execute(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := c.client.NewRequest("c1", 1, []byte("set x=1"))
	a, err := c.client.Query(ctx, "n1", &node.Query{Op: node.OpSubmit, Request: pbft.Marshal(req), WaitMillis: 4000})
	if err != nil || !a.Ordered || a.Seq != 1 {
		t.Fatalf("submit: %+v %v", a, err)
	}
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		st, err := c.client.Query(ctx, id, &node.Query{Op: node.OpStatus, Seq: 1, WaitMillis: 4000,
			Wait: &node.Wait{MinExecuted: 1, CommitsFrom: []string{"n1", "n2", "n3", "n4"}}})
		if err != nil || st.TimedOut || !st.Executed {
			t.Fatalf("status at %s: %+v %v", id, st, err)
		}
	}
}

// With tracing on, every replica reports the round of a request: the primary's
// pre-prepare broadcast and its delivery at each backup, every backup's prepare
// delivered at every other replica, and each replica's prepared, committed and executed,
// all with the same view, number and digest.
func TestTraceReportsTheRound(t *testing.T) {
	c := startTraced(t, true)
	c.execute(t)
	ids := []string{"n1", "n2", "n3", "n4"}
	// want lists what must have been reported; the trace arrives asynchronously.
	want := map[string]bool{"send preprepare n1>*": true}
	for _, r := range ids {
		for _, typ := range []string{trace.Prepared, trace.Committed, trace.Executed} {
			want[typ+" "+r] = true
		}
		want["send reply "+r+">gw"] = true
		if r != "n1" {
			want["recv preprepare n1>"+r] = true
			want["send prepare "+r+">*"] = true
		}
		for _, s := range ids[1:] {
			if s != r {
				want["recv prepare "+s+">"+r] = true
			}
		}
	}
	want["recv request gw>n1"] = true
	key := func(e trace.Event) string {
		switch e.Type {
		case trace.Send, trace.Recv:
			return fmt.Sprintf("%s %s %s>%s", e.Type, e.Kind, e.From, e.To)
		}
		return e.Type + " " + e.Node
	}
	var missing []string
	if err := poll.Within(5*time.Second, poll.Interval, func() (bool, error) {
		seen := map[string]bool{}
		for _, e := range c.snapshot() {
			seen[key(e)] = true
		}
		missing = missing[:0]
		for k := range want {
			if !seen[k] {
				missing = append(missing, k)
			}
		}
		return len(missing) == 0, nil
	}); err != nil {
		t.Fatalf("not reported: %v (%v)", missing, err)
	}
	c.stop()
	if c.err != nil {
		t.Fatal(c.err)
	}
	var digest trace.Short
	summaries := map[string]bool{}
	for _, e := range c.snapshot() {
		if e.Node == "" || e.T == 0 {
			t.Fatalf("event without node or time: %+v", e)
		}
		if e.Type == trace.Replica {
			summaries[e.Node] = true
			if e.Primary != "n1" || e.View != 0 || !e.Active {
				t.Fatalf("summary %+v, want view 0 active with primary n1", e)
			}
			continue
		}
		if e.Type == trace.Recv && e.Kind == "request" {
			if e.Client != "c1" {
				t.Fatalf("request from client %q, want c1", e.Client)
			}
			continue
		}
		if e.Seq != 1 || e.View != 0 {
			t.Fatalf("event %+v is not about #1 in view 0", e)
		}
		if e.Digest == (trace.Short{}) {
			continue // executed and reply carry no digest
		}
		if digest == (trace.Short{}) {
			digest = e.Digest
		}
		if e.Digest != digest {
			t.Fatalf("event %+v has digest %s, others %s", e, e.Digest, digest)
		}
		if e.Type == trace.Prepared && e.Count < 2 || e.Type == trace.Committed && e.Count < 3 {
			t.Fatalf("%s with a certificate of %d", e.Type, e.Count)
		}
	}
	if len(summaries) != 4 {
		t.Fatalf("summaries from %v, want all four replicas", summaries)
	}
}

// With tracing off nothing is published.
func TestTraceOffPublishesNothing(t *testing.T) {
	c := startTraced(t, false)
	c.execute(t)
	c.stop()
	if evs := c.snapshot(); len(evs) != 0 {
		t.Fatalf("%d events published with tracing off, first %+v", len(evs), evs[0])
	}
}
