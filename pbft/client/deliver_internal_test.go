package client

import (
	"fmt"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
)

// A replies message answers many requests at once (more than deliverAll looks up at a
// time here): each reply reaches its own request's set, and replies to requests nobody
// watches are dropped.
func TestRepliesMessageReachesEachRequest(t *testing.T) {
	ids := []string{"r1", "r2", "r3", "r4"}
	keys, err := auth.GenerateKeyrings(append([]string{"gw"}, ids...), ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	hub := bus.NewHub("test")
	t.Cleanup(hub.Close)
	c, err := New(Config{Keys: keys["gw"], Replicas: ids, Timeout: time.Minute, Retransmit: time.Hour,
		Connect: func(h bus.Handler) (bus.Transport, error) { return hub.Join("gw", bus.RoleClient, h) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const watched = 150
	sets := make([]*ReplySet, watched)
	for i := range sets {
		set, ok := c.Watch("cl", uint64(i+1), []byte("set x=1"))
		if !ok {
			t.Fatal("Watch refused a new request")
		}
		sets[i] = set
	}
	for r, id := range ids[:3] {
		var reps []*pbft.Reply
		for i := range watched + 10 { // the last ten: nobody watches them
			reps = append(reps, &pbft.Reply{Seq: uint64(i + 1), Client: "cl", Timestamp: uint64(i + 1), Replica: r, Result: []byte(fmt.Sprint(i))})
		}
		data := keys[id].Seal("gw", pbft.KindReplies, pbft.EncodeReplies(reps))
		c.receive(bus.Message{From: id, Kind: pbft.KindReplies, Data: data})
	}
	for i, set := range sets {
		best, ok := set.Agreed(c.Accept())
		if !ok || best.Seq != uint64(i+1) || string(best.Value) != fmt.Sprint(i) || best.Replies != 3 {
			t.Fatalf("request %d: %+v, agreed %v; want %d from 3 replicas", i+1, best, ok, i)
		}
	}
}

// isClosed says whether ch is closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
