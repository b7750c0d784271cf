package client

import (
	"context"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
)

// scripted is a cluster of replicas r1..r4 played by the test on an in-memory bus: r1..r3
// reply at once; r4 (the late one) answers an info query as told.
type scripted struct {
	ids   []string
	keys  map[string]*auth.Keyring
	hub   *bus.Hub
	trs   map[string]*bus.MemTransport
	asked chan string // r4's queries
}

func newScripted(t *testing.T, r4 func(s *scripted, q *pbft.Query)) (*scripted, *Client) {
	t.Helper()
	s := &scripted{ids: []string{"r1", "r2", "r3", "r4"}, hub: bus.NewHub("test"), trs: map[string]*bus.MemTransport{}, asked: make(chan string, 4)}
	keys, err := auth.GenerateKeyrings(append([]string{"gw"}, s.ids...), s.ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.keys = keys
	for _, id := range s.ids {
		tr, err := s.hub.Join(id, bus.RoleReplica, func(m bus.Message) {
			if id != "r4" || m.Kind != pbft.KindQuery {
				return
			}
			data, err := keys[id].Open(m.From, m.Kind, m.Data)
			if err != nil {
				return
			}
			if q, err := pbft.DecodeQuery(data); err == nil && q.Op == pbft.OpInfo {
				s.asked <- id
				r4(s, q)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		s.trs[id] = tr
	}
	c, err := New(Config{Keys: keys["gw"], Replicas: s.ids, Timeout: time.Minute, Retransmit: time.Hour,
		Connect: func(h bus.Handler) (bus.Transport, error) { return s.hub.Join("gw", bus.RoleClient, h) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.hub.Close() })
	return s, c
}

func (s *scripted) reply(id string) error {
	r := &pbft.Reply{View: 0, Seq: 1, Client: "cl", Timestamp: 1, Replica: 0, Result: []byte("OK")}
	data := s.keys[id].Seal("gw", pbft.KindReply.String(), pbft.Marshal(r))
	return s.trs[id].Send("gw", pbft.KindReply.String(), data)
}

func (s *scripted) answer(id string, a *pbft.Answer) error {
	data := s.keys[id].Seal("gw", pbft.KindAnswer, pbft.EncodeAnswer(a))
	return s.trs[id].Send("gw", pbft.KindAnswer, data)
}

// A late replica is waited for on what it reports, not for a fixed grace: asked, it
// answers that it executed the request, and the answer goes at once with the replies it
// has (the late one's, when it sent one first). With a grace of a minute, a fixed wait
// would last until the answer's deadline.
func TestAwaitAsksLateReplicas(t *testing.T) {
	for _, lateReplies := range []bool{false, true} {
		s, c := newScripted(t, func(s *scripted, q *pbft.Query) {
			// r4 may send after the test ended (its reply alone settles the answer), so
			// a closed bus is no error here.
			if lateReplies {
				_ = s.reply("r4") // before its answer, as a replica sends it
			}
			_ = s.answer("r4", &pbft.Answer{ID: q.ID, Replica: "r4", LastExecuted: q.Wait.MinExecuted})
		})
		op := []byte("get x")
		set, ok := c.Watch("cl", 1, op)
		if !ok {
			t.Fatal("watch refused")
		}
		for _, id := range []string{"r1", "r2", "r3"} {
			if err := s.reply(id); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		res, err := c.Await(ctx, Request{Client: "cl", Timestamp: 1, Op: op}, set,
			Settle{Need: []string{"r1", "r2", "r3"}, Late: []string{"r4"}, Grace: time.Minute, AskLate: true})
		expired := ctx.Err()
		cancel()
		if expired != nil {
			t.Fatalf("late replica replied %v: the answer waited until its deadline", lateReplies)
		}
		c.Unwatch("cl", 1)
		want := 3
		if lateReplies {
			want = 4
		}
		if err != nil || res.Replies != want || string(res.Value) != "OK" {
			t.Fatalf("late replica replied %v: %+v, %v; want %d replies", lateReplies, res, err, want)
		}
		select {
		case id := <-s.asked:
			if id != "r4" {
				t.Fatalf("asked %s", id)
			}
		default:
			t.Fatal("the late replica was not asked")
		}
	}
}
