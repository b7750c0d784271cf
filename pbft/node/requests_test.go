package node_test

import (
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/node"
)

// A batch of requests is checked request by request: one whose operation was altered
// after the gateway authenticated it, one naming another gateway (its own, genuine
// authenticator included) and an ordered one without an authenticator (a pre-prepare
// would relay it) are refused and counted; the honest reads (one with tags, one relying
// on the batch's envelope) and the honest write of the same batch are served.
func TestRequestBatchRefusesOnlyTheForgedRequests(t *testing.T) {
	mc := newMemCluster(t, nil, nil)
	mc.run()
	rd := newReader(t, mc)
	sign := func(gateway string, ts uint64, op string, readOnly bool) *pbft.Request {
		req := &pbft.Request{Gateway: gateway, Client: "c1", Timestamp: ts, Op: []byte(op), ReadOnly: readOnly}
		req.Auth = mc.keys[gateway].RequestTags(pbft.RequestDigest(req))
		return req
	}
	keys := mc.keys["reader"]
	sendBatch := func(reqs ...*pbft.Request) {
		t.Helper()
		payload := pbft.AppendRequests(nil, reqs)
		for _, id := range mc.ids {
			if err := rd.tr.Send(id, pbft.KindRequests, keys.Seal(id, pbft.KindRequests, payload)); err != nil {
				t.Fatal(err)
			}
		}
	}
	replies := func(ts uint64) map[string]*pbft.Reply {
		t.Helper()
		poll.Eventually(t, 5*time.Second, "a reply from every replica", func() bool { return len(rd.got(ts)) == len(mc.ids) })
		return rd.got(ts)
	}

	sendBatch(sign("reader", 1, "set x=1", false))
	replies(1)
	altered := sign("reader", 3, "get x", true)
	altered.Op = []byte("get y")
	sendBatch(
		sign("reader", 2, "get x", true),
		altered,
		sign("gw", 4, "get x", true), // another gateway's request, replayed by this one
		&pbft.Request{Gateway: "reader", Client: "c1", Timestamp: 5, Op: []byte("get x"), ReadOnly: true},
		&pbft.Request{Gateway: "reader", Client: "c2", Timestamp: 7, Op: []byte("set z=1")},
		sign("reader", 6, "set x=2", false),
	)
	for _, ts := range []uint64{2, 5} {
		for id, rep := range replies(ts) {
			if !rep.ReadOnly || string(rep.Result) != "1" && string(rep.Result) != "2" {
				t.Fatalf("%s answered read %d with %+v", id, ts, rep)
			}
		}
	}
	for id, rep := range replies(6) {
		if rep.ReadOnly || string(rep.Result) != "OK" || rep.Seq != 2 {
			t.Fatalf("%s answered the batched write with %+v", id, rep)
		}
	}
	for _, id := range mc.ids {
		st := mc.nodes[id].Stats()
		if st.Rejected[node.RejectBadMAC] != 2 || st.Rejected[node.RejectSenderMismatch] != 1 || st.In[pbft.KindRequests] != 2 {
			t.Fatalf("%s: rejected %v, in %v; want two bad MACs, one sender mismatch, two batches", id, st.Rejected, st.In)
		}
	}
	if n := len(rd.got(3)) + len(rd.got(4)) + len(rd.got(7)); n != 0 {
		t.Fatalf("%d replies to the refused requests", n)
	}
}
