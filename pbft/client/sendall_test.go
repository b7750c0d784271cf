package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
)

// Runs of requests sent one after another with SendAll reach the primary as one bus
// message each, in order: every request is answered by a quorum, sequence numbers never
// go down along the runs, and the primary stepped three batches (a retransmission would
// go alone).
func TestSendAllSendsARunInOneMessageAndKeepsOrder(t *testing.T) {
	c := startCluster(t, 4, 10*time.Second, nil)
	const runs, per = 3, 50
	var pending []*client.Pending
	for k := range runs {
		rs := make([]client.Request, per)
		for i := range rs {
			n := k*per + i
			rs[i] = client.Request{Client: fmt.Sprintf("c%d", n%2), Timestamp: uint64(n/2 + 1), Op: []byte(fmt.Sprintf("set k%d=%d", n, n))}
		}
		pending = append(pending, c.client.SendAll("r1", rs)...)
	}
	var last uint64
	check := func(i int, res client.Result, err error) {
		if err != nil || string(res.Value) != "OK" || res.Replies < 3 {
			t.Fatalf("request %d: %+v, %v; want OK from a quorum", i, res, err)
		}
		if res.Seq < max(last, 1) {
			t.Fatalf("request %d ordered at %d after one at %d", i, res.Seq, last)
		}
		last = res.Seq
	}
	// The first run one by one, the others with WaitAll.
	for i, p := range pending[:per] {
		res, err := p.Wait(context.Background())
		check(i, res, err)
	}
	for k := 1; k < runs; k++ {
		seen := 0
		client.WaitAll(context.Background(), pending[k*per:(k+1)*per], func(i int, res client.Result, err error) {
			if i != seen {
				t.Fatalf("run %d: WaitAll reported request %d after %d others, want them in order", k, i, seen)
			}
			seen++
			check(k*per+i, res, err)
		})
		if seen != per {
			t.Fatalf("run %d: WaitAll reported %d requests, want %d", k, seen, per)
		}
	}
	r1 := c.nodes["r1"]
	poll.Eventually(t, 5*time.Second, "r1 stepping every request", func() bool { return r1.Stats().In["request"] >= runs*per })
	if st := r1.Stats(); st.In[pbft.KindRequests] != runs {
		t.Fatalf("r1 stepped %v; want %d request batches", st.In, runs)
	}
}

// A request whose id is watched with another operation fails alone, at once, and is not
// sent; the others of its run are ordered.
func TestSendAllRefusesAnIDInFlightWithAnotherOperation(t *testing.T) {
	c := startCluster(t, 4, 10*time.Second, nil)
	set, ok := c.client.Watch("a", 2, []byte("set x=1"))
	if !ok || set == nil {
		t.Fatal("watch")
	}
	defer c.client.Unwatch("a", 2)
	ps := c.client.SendAll("r1", []client.Request{
		{Client: "a", Timestamp: 1, Op: []byte("set y=1")},
		{Client: "a", Timestamp: 2, Op: []byte("set x=2")},
		{Client: "a", Timestamp: 3, Op: []byte("set z=1")},
	})
	if _, err := ps[1].Wait(context.Background()); !errors.Is(err, client.ErrInFlight) {
		t.Fatalf("request 2: %v; want ErrInFlight", err)
	}
	for _, i := range []int{0, 2} {
		if res, err := ps[i].Wait(context.Background()); err != nil || string(res.Value) != "OK" {
			t.Fatalf("request %d: %+v %v", i+1, res, err)
		}
	}
}
