package node

import (
	"errors"
	"time"

	"github.com/pbft-nats/pbft/pbft"
)

// RejectNotReadOnly counts read-only requests whose operation the application does not
// class as read-only: the replica answered them with pbft.NotReadOnlyResult.
const RejectNotReadOnly = "not read-only"

// submitReadOnly steps a read-only request that came as a submit query: its reply goes
// out with the next flush like any reply, and the answer (the replica's view, not
// ordered) comes at once, since nothing will order it.
func (n *Node) submitReadOnly(w *waiter, req *pbft.Request) {
	if n.Fault() != FaultCrash {
		n.stepReadOnly(pbft.FromClient, w.from, req)
	}
	n.answer(w, &Answer{View: n.r.View()})
}

// stepReadOnly steps an authenticated read-only request sent by sender (replica index
// from, or pbft.FromClient for a gateway; the core refuses one a replica relays).
func (n *Node) stepReadOnly(from int, sender string, req *pbft.Request) {
	n.count(n.stats.In, "request")
	if from != pbft.FromClient {
		// A gateway's read-only request has nothing for the metrics (no latency: it is
		// never ordered; the gateway is no peer heard from): no clock read per read.
		n.metrics.noteStepped(from, req, time.Now())
	}
	if err := n.r.Step(from, req); errors.Is(err, pbft.ErrNotReadOnly) {
		n.count(n.stats.Rejected, RejectNotReadOnly)
	} else if err != nil {
		n.count(n.stats.Rejected, RejectProtocol)
	}
	n.traceRecv(sender, req)
}
