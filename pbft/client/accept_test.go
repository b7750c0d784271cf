package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
)

// scripted is a cluster of replicas played by the test on the in-memory hub: each one
// answers each request it receives (once: not its retransmissions) with what its script
// gives for the operation, or not at all. A held replica keeps its replies until
// released: a slow one.
type scripted struct {
	ids    []string
	client *client.Client

	mu       sync.Mutex
	script   []map[string]string // per replica: operation -> result
	answered []map[string]bool   // per replica: the requests it answered
	held     []bool
	pending  [][]func() // per replica: replies kept while held
	views    []uint64   // per replica: the view its replies report
}

func newScripted(t *testing.T, n int, timeout time.Duration) *scripted {
	t.Helper()
	s := &scripted{script: make([]map[string]string, n), answered: make([]map[string]bool, n), held: make([]bool, n),
		pending: make([][]func(), n), views: make([]uint64, n)}
	for i := range n {
		s.ids = append(s.ids, fmt.Sprintf("r%d", i+1))
		s.script[i], s.answered[i] = map[string]string{}, map[string]bool{}
	}
	keys, err := auth.GenerateKeyrings(append([]string{"c"}, s.ids...), s.ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	hub := bus.NewHub("test")
	t.Cleanup(hub.Close)
	for i, id := range s.ids {
		var tr *bus.MemTransport
		tr, err = hub.Join(id, bus.RoleReplica, func(m bus.Message) {
			data, err := keys[id].Open(m.From, m.Kind, m.Data)
			if err != nil || m.Kind != pbft.KindRequest.String() {
				return
			}
			msg, err := pbft.Unmarshal(data)
			req, ok := msg.(*pbft.Request)
			if err != nil || !ok {
				return
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			result, ok := s.script[i][string(req.Op)]
			key := fmt.Sprintf("%s/%d/%s", req.Client, req.Timestamp, req.Op)
			if !ok || s.answered[i][key] {
				return
			}
			s.answered[i][key] = true
			rep := &pbft.Reply{Seq: 1, View: s.views[i], Client: req.Client, Timestamp: req.Timestamp, Replica: i, Result: []byte(result)}
			kind := pbft.KindReply.String()
			send := func() { _ = tr.Send(req.Gateway, kind, keys[id].Seal(req.Gateway, kind, pbft.Marshal(rep))) }
			if s.held[i] {
				s.pending[i] = append(s.pending[i], send)
				return
			}
			send()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s.client, err = client.New(client.Config{Keys: keys["c"], Replicas: s.ids, Timeout: timeout, Retransmit: 20 * time.Millisecond,
		Connect: func(h bus.Handler) (bus.Transport, error) { return hub.Join("c", bus.RoleClient, h) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.client.Close() })
	return s
}

// answer makes replicas from..to-1 (0-based) reply result to op.
func (s *scripted) answer(from, to int, op, result string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := from; i < to; i++ {
		s.script[i][op] = result
	}
}

// hold makes replicas from..to-1 keep their replies.
func (s *scripted) hold(from, to int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := from; i < to; i++ {
		s.held[i] = true
	}
}

// release sends what replica i kept and stops holding it; it returns how many replies
// that was.
func (s *scripted) release(i int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, send := range s.pending[i] {
		send()
	}
	n := len(s.pending[i])
	s.pending[i], s.held[i] = nil, false
	return n
}

// A result needs a quorum of matching replies, floor((n+f)/2)+1 = 5 of n = 7: f+1 = 3,
// or even 4, are not enough.
func TestInvokeAcceptsOnlyAtAQuorum(t *testing.T) {
	s := newScripted(t, 7, 300*time.Millisecond)
	if got := s.client.Accept(); got != 5 {
		t.Fatalf("Accept() = %d for n = 7, want 5", got)
	}
	s.answer(0, 4, "get x", "v")
	res, err := s.client.Invoke(context.Background(), client.Request{Client: "alice", Timestamp: 1, Op: []byte("get x")})
	if !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("4 of 7 matching replies: Invoke = %+v, %v; want a timeout", res, err)
	}
	s.answer(4, 5, "get x", "v")
	res, err = s.client.Invoke(context.Background(), client.Request{Client: "alice", Timestamp: 2, Op: []byte("get x")})
	if err != nil || string(res.Value) != "v" || res.Replies < 5 {
		t.Fatalf("5 of 7 matching replies: Invoke = %+v, %v; want v from 5", res, err)
	}
}

// A conflict, too, needs a quorum: f+1 conflict replies refuse nothing.
func TestConflictNeedsAQuorum(t *testing.T) {
	s := newScripted(t, 7, 300*time.Millisecond)
	s.answer(0, 3, "set x=1", conflictFor("set x=1"))
	_, err := s.client.Invoke(context.Background(), client.Request{Client: "alice", Timestamp: 1, Op: []byte("set x=1")})
	if !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("f+1 conflict replies: Invoke = %v, want a timeout", err)
	}
	s.answer(3, 5, "set x=1", conflictFor("set x=1"))
	_, err = s.client.Invoke(context.Background(), client.Request{Client: "alice", Timestamp: 2, Op: []byte("set x=1")})
	if !errors.Is(err, client.ErrConflict) {
		t.Fatalf("a quorum of conflict replies: Invoke = %v, want ErrConflict", err)
	}
}

// A request is refused as a conflict (its id was used with another operation), then the
// first operation is retransmitted under that id. The refusal's replies that were still
// on their way when it was decided arrive among the retransmission's (replies name no
// operation): they must not refuse it. With n = 4, a refusal decided at f+1 = 2 leaves 2
// late conflict replies, as many as decided it; decided at a quorum, 1.
func TestLateConflictRepliesDoNotRefuseARetransmission(t *testing.T) {
	s := newScripted(t, 4, 5*time.Second)
	s.answer(0, 4, "set x=7", conflictFor("set x=7"))
	s.answer(0, 4, "get x", "")
	s.hold(2, 4) // r3 and r4 are slow
	refused := make(chan error, 1)
	go func() {
		_, err := s.client.Invoke(context.Background(), client.Request{Client: "c1", Timestamp: 1, Op: []byte("set x=7")})
		refused <- err
	}()
	// r1 and r2 answer at once; r3 only once the client plainly waits for more (a client
	// that decides at f+1 has returned by then), r4 later still.
	var err error
	select {
	case err = <-refused:
	case <-time.After(500 * time.Millisecond):
		s.release(2)
		err = <-refused
	}
	if !errors.Is(err, client.ErrConflict) {
		t.Fatalf("set x=7 under a used id: %v, want ErrConflict", err)
	}
	// The retransmission of the first operation: the late replies arrive first.
	r := client.Request{Client: "c1", Timestamp: 1, Op: []byte("get x")}
	set, ok := s.client.Watch(r.Client, r.Timestamp, r.Op)
	if !ok {
		t.Fatal("cannot watch the retransmission")
	}
	defer s.client.Unwatch(r.Client, r.Timestamp)
	_ = set   // watched: the late replies, queued before the retransmission's, reach it
	late := 0 // replicas with late replies
	for i := 2; i < 4; i++ {
		if s.release(i) > 0 {
			late++
		}
	}
	res, err := s.client.Invoke(context.Background(), r)
	if err != nil || string(res.Value) != "" || res.Replies < 3 {
		t.Fatalf("retransmission after late conflict replies from %d replicas: %+v, %v; want its result from a quorum", late, res, err)
	}
}

// One replica reporting a view far ahead cannot move the client's primary: a view is
// followed once f+1 matching replies report it.
func TestOneReplicaCannotMoveThePrimary(t *testing.T) {
	s := newScripted(t, 4, 5*time.Second)
	s.answer(0, 2, "get x", "") // r3 is silent: r4's reply is among the quorum
	s.answer(3, 4, "get x", "")
	s.mu.Lock()
	s.views[3] = 1001 // whose primary would be r2
	s.mu.Unlock()
	if _, err := s.client.Invoke(context.Background(), client.Request{Client: "alice", Timestamp: 1, Op: []byte("get x")}); err != nil {
		t.Fatal(err)
	}
	if p := s.client.Primary(); p != "r1" {
		t.Fatalf("primary %s after one replica claimed view 1001, want r1", p)
	}
	s.mu.Lock()
	s.views[1] = 1001 // f+1 = 2 replicas now report it
	s.mu.Unlock()
	if _, err := s.client.Invoke(context.Background(), client.Request{Client: "alice", Timestamp: 2, Op: []byte("get x")}); err != nil {
		t.Fatal(err)
	}
	if p := s.client.Primary(); p != "r2" {
		t.Fatalf("primary %s after f+1 replicas reported view 1001, want r2", p)
	}
}

// conflictFor is what replicas answer a request with op whose id was used before.
func conflictFor(op string) string { return string(pbft.ConflictResultFor([]byte(op))) }

// For n < 4, f = 0 and the quorum is a majority: never fewer than f+1.
func TestAcceptForSmallClusters(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 4, 6: 4, 7: 5, 10: 7} {
		s := newScripted(t, n, time.Second)
		if got := s.client.Accept(); got != want {
			t.Errorf("n = %d: Accept() = %d, want %d", n, got, want)
		}
	}
}

// silentClusterClient joins four replicas r1..r4 that never answer (each message they
// receive goes to seen) and a client of them with the timeout and retransmission delay
// given.
func silentClusterClient(t *testing.T, timeout, retransmit time.Duration, seen func(id string, m bus.Message)) *client.Client {
	t.Helper()
	ids := []string{"r1", "r2", "r3", "r4"}
	keys, err := auth.GenerateKeyrings(append([]string{"c"}, ids...), ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	hub := bus.NewHub("test")
	t.Cleanup(hub.Close)
	for _, id := range ids {
		if _, err := hub.Join(id, bus.RoleReplica, func(m bus.Message) { seen(id, m) }); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(client.Config{Keys: keys["c"], Replicas: ids, Timeout: timeout, Retransmit: retransmit,
		Connect: func(h bus.Handler) (bus.Transport, error) { return hub.Join("c", bus.RoleClient, h) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Invoke gives up at its Timeout even when that comes long before the next
// retransmission (the clock's period): nobody answers here.
func TestInvokeTimesOutBeforeItsFirstRetransmission(t *testing.T) {
	c := silentClusterClient(t, 100*time.Millisecond, time.Hour, func(string, bus.Message) {})
	start := time.Now()
	_, err := c.Invoke(context.Background(), client.Request{Client: "alice", Timestamp: 1, Op: []byte("get x")})
	if took := time.Since(start); !errors.Is(err, client.ErrTimeout) || took > 10*time.Second {
		t.Fatalf("Invoke = %v after %v; want ErrTimeout after about 100ms", err, took)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Invoke = %v: the caller did not give up, its context must not be named", err)
	}
}

// Without an outcome, Invoke retransmits on the client's clock, one to one and a half
// Retransmit delays apart, and still gives up at its Timeout, many delays later: nobody
// answers.
func TestInvokeRetransmitsOnTheClockUntilItsTimeout(t *testing.T) {
	var mu sync.Mutex
	var resent []time.Time // requests r2 received: the client sends to r1 first, so retransmissions
	const retransmit, timeout = 40 * time.Millisecond, 800 * time.Millisecond
	c := silentClusterClient(t, timeout, retransmit, func(id string, m bus.Message) {
		if id == "r2" && m.Kind == pbft.KindRequest.String() {
			mu.Lock()
			resent = append(resent, time.Now())
			mu.Unlock()
		}
	})
	start := time.Now()
	_, err := c.Invoke(context.Background(), client.Request{Client: "alice", Timestamp: 1, Op: []byte("get x")})
	took := time.Since(start)
	if !errors.Is(err, client.ErrTimeout) || took < timeout || took > 10*time.Second {
		t.Fatalf("Invoke = %v after %v; want ErrTimeout after about %v", err, took, timeout)
	}
	mu.Lock()
	defer mu.Unlock()
	// At least a delay apart: at most timeout/retransmit of them.
	if len(resent) < 3 || len(resent) > int(timeout/retransmit) {
		t.Fatalf("%d retransmissions in %v, want 3 to %d", len(resent), took, timeout/retransmit)
	}
	// The typical gap is within one and a half delays (a clock that ticked every delay
	// would make it two), with room for a late timer.
	var gaps []time.Duration
	for i := 1; i < len(resent); i++ {
		gaps = append(gaps, resent[i].Sub(resent[i-1]))
	}
	slices.Sort(gaps)
	if median := gaps[len(gaps)/2]; median < retransmit*9/10 || median > retransmit*3/2+10*time.Millisecond {
		t.Fatalf("median gap between retransmissions %v (all %v), want %v to %v", median, gaps, retransmit, retransmit*3/2)
	}
}
