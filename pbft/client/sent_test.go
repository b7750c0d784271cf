package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/client"
)

// Submits started one after another, each once the previous one's request is on the bus
// (Route.Sent), reach the primary in that order while many wait at once: their sequence
// numbers never go down, and none is refused as older than a later request of its client
// that executed first.
func TestSubmitsStartedAfterSentKeepTheirOrder(t *testing.T) {
	c := startCluster(t, 4, 10*time.Second, nil)
	const n = 200
	type outcome struct {
		asg client.Assignment
		err error
	}
	results := make([]chan outcome, n)
	for i := range n {
		results[i] = make(chan outcome, 1)
		sent := make(chan struct{})
		go func() {
			asg, err := c.client.Submit(context.Background(), client.Request{Client: fmt.Sprintf("c%d", i%2), Timestamp: uint64(i/2 + 1),
				Op: []byte(fmt.Sprintf("set k%d=%d", i, i)), To: "r1"}, client.Route{Sent: func() { close(sent) }})
			results[i] <- outcome{asg, err}
		}()
		<-sent
	}
	var last uint64
	for i := range n {
		o := <-results[i]
		if o.err != nil {
			t.Fatalf("request %d: %v", i, o.err)
		}
		if o.asg.Seq < max(last, 1) {
			t.Fatalf("request %d ordered at %d after request %d at %d", i, o.asg.Seq, i-1, last)
		}
		last = o.asg.Seq
	}
}
