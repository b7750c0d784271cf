package node

import (
	"errors"

	"github.com/pbft-nats/pbft/pbft"
)

// handleRequests steps a gateway's batch of requests (pbft.KindRequests) that passed the
// envelope's check: each request on its own, as if it had come alone, so a request
// whose authenticator fails, or that names another gateway, is refused and counted
// without refusing the others (pbft/requestbatch.go says which requests need one).
// Stats.In counts the batch under pbft.KindRequests and each request it steps under
// "request". Requests are of no configuration: each is stepped in the one in force.
func (n *Node) handleRequests(sender string, payload []byte) {
	if _, ok := n.index[sender]; ok {
		n.reject(RejectSenderMismatch, sender, pbft.KindRequests, errors.New("only gateways send request batches"))
		return
	}
	reqs, err := pbft.DecodeRequests(payload)
	if err != nil {
		n.reject(RejectMalformed, sender, pbft.KindRequests, err)
		return
	}
	n.count(n.stats.In, pbft.KindRequests)
	kind := pbft.KindRequest.String()
	for _, req := range reqs {
		if req.Gateway != sender {
			n.reject(RejectSenderMismatch, sender, pbft.KindRequests, errors.New("a client may only send its own requests"))
			continue
		}
		// A read-only request without tags is authenticated by the envelope (sealed by the
		// gateway it names for this replica, or for every replica with a tag each) and is
		// never relayed; one with tags, or any ordered request (a pre-prepare relays it),
		// must carry a valid authenticator.
		if !req.ReadOnly || req.Auth != nil {
			if err := n.verifyInner(req); err != nil {
				n.reject(rejectReason(err), sender, pbft.KindRequests, err)
				continue
			}
		}
		n.step(n.r.Configuration(), pbft.FromClient, sender, kind, req)
	}
}
