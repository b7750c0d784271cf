package campaign

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeCluster tracks what the nemesis did to each replica and NATS server, and fails
// the test if more than f replicas are ever faulty at once or an operation does not
// fit the state (a heal of what is not faulted, a kill of a dead replica).
type fakeCluster struct {
	t        *testing.T
	ids      []string
	nats     int
	f        int
	mu       sync.Mutex
	state    map[string]string // "" healthy, or what is wrong
	natsDown map[int]bool
	maxBad   int
	calls    []string
	dynamic  bool // the membership changes (fakeReconf): f follows it
}

func newFake(t *testing.T, n, nats int) *fakeCluster {
	c := &fakeCluster{t: t, nats: nats, f: (n - 1) / 3, state: map[string]string{}, natsDown: map[int]bool{}}
	for i := 1; i <= n; i++ {
		c.ids = append(c.ids, fmt.Sprintf("n%d", i))
	}
	return c
}

func (c *fakeCluster) Replicas() []string { return c.ids }
func (c *fakeCluster) NATSServers() int   { return c.nats }

func (c *fakeCluster) set(call, id, want, to string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, call+" "+id)
	if !slices.Contains(c.ids, id) {
		return fmt.Errorf("unknown replica %s", id)
	}
	if c.state[id] != want {
		c.t.Errorf("%s %s: state %q, want %q", call, id, c.state[id], want)
	}
	c.state[id] = to
	bad := 0
	for _, s := range c.state {
		if s != "" {
			bad++
		}
	}
	c.maxBad = max(c.maxBad, bad)
	if bad > c.budget() {
		c.t.Errorf("%s %s: %d replicas faulty, f=%d: %v", call, id, bad, c.budget(), c.state)
	}
	return nil
}

// budget is f, or with reconfigurations f' of the membership in force. Called with mu held.
func (c *fakeCluster) budget() int {
	if c.dynamic {
		return fOf(len(c.ids))
	}
	return c.f
}

func (c *fakeCluster) KillReplica(id string) error {
	c.mu.Lock()
	s := c.state[id]
	c.mu.Unlock()
	if strings.HasPrefix(s, "fault=") {
		return c.set("kill", id, s, "killed")
	}
	return c.set("kill", id, "", "killed")
}

func (c *fakeCluster) StartReplica(id string, env ...string) error {
	to := ""
	if len(env) > 0 {
		to = "fault=" + strings.TrimPrefix(env[0], "PBFT_FAULT=")
	}
	return c.set("start", id, "killed", to)
}
func (c *fakeCluster) StopReplica(id string) error { return c.set("stop", id, "", "stopped") }
func (c *fakeCluster) ContReplica(id string) error { return c.set("cont", id, "stopped", "") }
func (c *fakeCluster) CutReplica(id string) error  { return c.set("cut", id, "", "cut") }
func (c *fakeCluster) HealReplica(id string) error { return c.set("heal", id, "cut", "") }

func (c *fakeCluster) KillNATS(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, fmt.Sprintf("killnats %d", i))
	if c.natsDown[i] || len(c.natsDown) > 0 {
		c.t.Errorf("kill nats %d with %v down", i, c.natsDown)
	}
	c.natsDown[i] = true
	return nil
}

func (c *fakeCluster) StartNATS(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, fmt.Sprintf("startnats %d", i))
	if !c.natsDown[i] {
		c.t.Errorf("start nats %d that is up", i)
	}
	delete(c.natsDown, i)
	return nil
}

func (c *fakeCluster) healthy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.state {
		if s != "" {
			return false
		}
	}
	return len(c.natsDown) == 0
}

func runFakeNemesis(t *testing.T, n, nats int, seed uint64, d time.Duration) (*fakeCluster, *Nemesis) {
	c := newFake(t, n, nats)
	start := time.Now()
	var settled sync.Map
	nem := NewNemesis(c, NemesisConfig{Seed: seed, Faults: AllFaults, F: (n - 1) / 3,
		MinGap: time.Millisecond, MaxGap: 5 * time.Millisecond, MinHold: time.Millisecond, MaxHold: 10 * time.Millisecond,
		Settle: func(ctx context.Context, id string) error {
			settled.Store(id, true)
			return nil
		}, SettleTimeout: time.Second}, func() time.Duration { return time.Since(start) })
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	nem.Run(ctx)
	if !c.healthy() {
		t.Fatalf("not healed after Run: %v, nats down %v", c.state, c.natsDown)
	}
	return c, nem
}

// Every kind of fault is injected and healed, never more than f replicas at once, and
// everything is healed when Run returns.
func TestNemesisStaysWithinF(t *testing.T) {
	for _, n := range []int{4, 7} {
		t.Run(fmt.Sprint("n=", n), func(t *testing.T) {
			c, nem := runFakeNemesis(t, n, 3, 42, 600*time.Millisecond)
			ev := nem.Events()
			kinds := map[FaultKind]int{}
			for _, e := range ev {
				kinds[e.Kind]++
				if e.Error != "" || e.Healed < e.Start {
					t.Errorf("event %+v", e)
				}
				if (e.Kind == FaultKill || e.Kind == FaultEquivocate || e.Kind == FaultSilent) && e.Settled < e.Healed {
					t.Errorf("restarted replica not settled: %+v", e)
				}
			}
			if slices.Contains(nem.cfg.Faults, FaultForge) {
				t.Errorf("forge drawn on a cluster that cannot host forgers")
			}
			for _, k := range nem.cfg.Faults {
				if kinds[k] == 0 {
					t.Errorf("no %s fault in %d events: %v", k, len(ev), kinds)
				}
			}
			if c.maxBad > (n-1)/3 || nem.MaxFaulty() > (n-1)/3 {
				t.Fatalf("at most %d (nemesis: %d) replicas faulty, f=%d", c.maxBad, nem.MaxFaulty(), (n-1)/3)
			}
			if n == 7 && c.maxBad != 2 {
				t.Errorf("n=7: at most %d faulty at once, want the schedule to reach f=2", c.maxBad)
			}
		})
	}
}

// One NATS server: no NATS faults are drawn.
func TestNemesisNoNATSFaultsWithOneServer(t *testing.T) {
	c, nem := runFakeNemesis(t, 4, 1, 7, 200*time.Millisecond)
	for _, e := range nem.Events() {
		if e.Kind == FaultNATS {
			t.Fatalf("NATS fault with one server: %+v", e)
		}
	}
	if len(c.calls) == 0 {
		t.Fatal("no faults at all")
	}
}

// firstEvents runs nem until it has k events (at most 10 s), then ends it and returns them.
func firstEvents(t *testing.T, nem *Nemesis, k int) []FaultEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		nem.Run(ctx)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(nem.Events()) < k {
		if time.Now().After(deadline) {
			t.Fatalf("only %d faults after 10s", len(nem.Events()))
		}
		wait(context.Background(), time.Millisecond) // polling, with a deadline
	}
	cancel()
	<-done
	return nem.Events()[:k]
}

// With f=1 the seed fixes the schedule: the same kinds on the same targets in the same
// order; another seed gives another one.
func TestNemesisScheduleIsSeeded(t *testing.T) {
	schedule := func(seed uint64) []string {
		c := newFake(t, 4, 1)
		var out []string
		var clock atomic.Int64 // every reading later than the one before
		nem := NewNemesis(c, NemesisConfig{Seed: seed, Faults: AllFaults, F: 1,
			MinGap: time.Millisecond, MaxGap: 2 * time.Millisecond, MinHold: time.Millisecond, MaxHold: 2 * time.Millisecond},
			func() time.Duration { return time.Duration(clock.Add(1)) })
		for _, e := range firstEvents(t, nem, 12) {
			out = append(out, string(e.Kind)+":"+e.Target)
		}
		return out
	}
	a, b, c := schedule(1), schedule(1), schedule(2)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different schedules:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("different seeds, same schedule: %v", a)
	}
}

func TestClientClassifiesAnswers(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/kv/ok":
			w.Header().Set("X-PBFT-Seq", "7")
			w.Header().Set("X-PBFT-Replies", "4")
			if r.Method == http.MethodGet {
				_, _ = w.Write([]byte("v1"))
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case "/v1/kv/conflict":
			http.Error(w, "stale", http.StatusConflict)
		case "/v1/kv/timeout":
			http.Error(w, "timeout", http.StatusGatewayTimeout)
		case "/v1/kv/slow":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	c := NewKVClient(srv.URL, 200*time.Millisecond)
	defer c.Close()
	ctx := context.Background()
	if r := c.Do(ctx, KindGet, "ok", ""); r.Status != StatusOK || r.Value != "v1" || r.Seq != 7 || r.Replies != 4 {
		t.Errorf("get: %+v", r)
	}
	if r := c.Do(ctx, KindSet, "ok", "x"); r.Status != StatusOK || r.HTTP != http.StatusNoContent {
		t.Errorf("set: %+v", r)
	}
	if r := c.Do(ctx, KindDel, "conflict", ""); r.Status != StatusFail || r.HTTP != http.StatusConflict {
		t.Errorf("409: %+v", r)
	}
	if r := c.Do(ctx, KindSet, "timeout", "x"); r.Status != StatusInfo || r.HTTP != http.StatusGatewayTimeout {
		t.Errorf("504: %+v", r)
	}
	if r := c.Do(ctx, KindSet, "slow", "x"); r.Status != StatusInfo || r.HTTP != 0 || r.Err == "" {
		t.Errorf("client timeout: %+v", r)
	}
	// A gateway that is not listening (restarting) refuses the connection: nothing was
	// sent, so the write definitely did not happen.
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	d := NewKVClient(downURL, 200*time.Millisecond)
	defer d.Close()
	if r := d.Do(ctx, KindSet, "ok", "x"); r.Status != StatusFail || !r.Refused || r.Err == "" {
		t.Errorf("refused connection: %+v", r)
	}
}
