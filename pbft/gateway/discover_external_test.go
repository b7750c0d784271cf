package gateway

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
)

// A gateway of external replicas started after a reconfiguration, told the members in
// force (PBFT_NODE_IDS) but not their configuration's number: without learning it, the
// read-only replies (of configuration 1) count for nothing and every read is ordered;
// learnConfiguration makes it follow configuration 1, and reads are answered read-only.
func TestExternalGatewayLearnsTheConfigurationInForce(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	s := testSettings()
	five := []string{"n1", "n2", "n3", "n4", "n5"}
	four := five[:4]
	e, err := embedded.Start(five, s, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, m, err := e.Reconfigure(ctx, client.Request{Client: "c1", Timestamp: 1}, four); err != nil || m.Conf != 1 {
		t.Fatalf("reconfigure to %v: %v %v", four, m, err)
	}
	// The cluster's own client (one identity per gateway: a second client of the same
	// identity would share its replies), told the members but not their configuration.
	c := e.Client()
	c.SetMembership(0, four, nil)
	ordered := func(ts uint64) bool {
		t.Helper()
		res, ordered, err := c.Read(ctx, client.Request{Client: "c2", Timestamp: ts, Op: []byte("get x")})
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		t.Logf("read: %d replies, ordered %v", res.Replies, ordered)
		return ordered
	}
	if !ordered(10) {
		t.Fatal("a read answered read-only by replies of another configuration than the one the client follows")
	}

	x := &External{client: c, wait: s.RequestTimeout}
	x.learnConfiguration()
	defer x.stopLearning() // not Close: the client is the cluster's
	poll.Eventually(t, 10*time.Second, "the gateway following configuration 1", func() bool {
		conf, _ := c.Configuration()
		return conf == 1
	})
	if ordered(11) {
		t.Fatal("the read was ordered after the gateway learnt configuration 1")
	}
}
