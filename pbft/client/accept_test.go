package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
)

// scripted is a cluster of replicas played by the test on the in-memory hub: each one
// answers every request it receives with the reply its script gives, or not at all.
type scripted struct {
	ids    []string
	client *client.Client
	// answers[i] is what replica i replies (nil: nothing); swapped while requests run.
	answers []atomic.Pointer[string]
}

func newScripted(t *testing.T, n int, timeout time.Duration) *scripted {
	t.Helper()
	s := &scripted{answers: make([]atomic.Pointer[string], n)}
	for i := range n {
		s.ids = append(s.ids, fmt.Sprintf("r%d", i+1))
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
			answer := s.answers[i].Load()
			if err != nil || !ok || answer == nil {
				return
			}
			rep := &pbft.Reply{Seq: 1, Client: req.Client, Timestamp: req.Timestamp, Replica: i, Result: []byte(*answer)}
			kind := pbft.KindReply.String()
			_ = tr.Send(req.Gateway, kind, keys[id].Seal(req.Gateway, kind, pbft.Marshal(rep)))
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

// answer makes replicas from..to-1 (0-based) reply result.
func (s *scripted) answer(from, to int, result string) {
	for i := from; i < to; i++ {
		s.answers[i].Store(&result)
	}
}

// A result needs a quorum of matching replies, floor((n+f)/2)+1 = 5 of n = 7: f+1 = 3,
// or even 4, are not enough.
func TestInvokeAcceptsOnlyAtAQuorum(t *testing.T) {
	s := newScripted(t, 7, 300*time.Millisecond)
	if got := s.client.Accept(); got != 5 {
		t.Fatalf("Accept() = %d for n = 7, want 5", got)
	}
	s.answer(0, 4, "v")
	res, err := s.client.Invoke(context.Background(), client.Request{Client: "alice", Timestamp: 1, Op: []byte("get x")})
	if !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("4 of 7 matching replies: Invoke = %+v, %v; want a timeout", res, err)
	}
	s.answer(4, 5, "v")
	res, err = s.client.Invoke(context.Background(), client.Request{Client: "alice", Timestamp: 2, Op: []byte("get x")})
	if err != nil || string(res.Value) != "v" || res.Replies < 5 {
		t.Fatalf("5 of 7 matching replies: Invoke = %+v, %v; want v from 5", res, err)
	}
}

// A conflict is believed at f+1 matching replies (it changes nothing, see Accept).
func TestInvokeRefusesAConflictAtFPlusOne(t *testing.T) {
	s := newScripted(t, 7, 2*time.Second)
	s.answer(0, 3, pbft.ConflictResult)
	_, err := s.client.Invoke(context.Background(), client.Request{Client: "alice", Timestamp: 1, Op: []byte("set x=1")})
	if !errors.Is(err, client.ErrConflict) {
		t.Fatalf("f+1 conflict replies: Invoke = %v, want ErrConflict", err)
	}
}

// For n < 4, f = 0 and the quorum is a majority: never fewer than f+1.
func TestAcceptForSmallClusters(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 4, 6: 4, 7: 5, 10: 7} {
		s := newScripted(t, n, time.Second)
		if got := s.client.Accept(); got != want {
			t.Errorf("n = %d: Accept() = %d, want %d", n, got, want)
		}
	}
}
