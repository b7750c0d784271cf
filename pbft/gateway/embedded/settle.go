package embedded

import (
	"time"

	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/gateway/settle"
	"github.com/pbft-nats/pbft/pbft/node"
)

// lateGrace bounds how long a silent or equivocating replica, which still receives and
// executes but is not waited for like a live one, is given to report its execution (the
// answer waits on its report, not on this time, when it executes in time): long enough
// for a replica a moment behind the others, short enough not to be a timeout.
const lateGrace = 200 * time.Millisecond

// noQuorumWait bounds every wait once fewer than 2f+1 replicas are free of faults: no new
// request commits, and an answer waits only for messages already on their way to arrive,
// so that the counts are the same every run.
const noQuorumWait = 500 * time.Millisecond

// Plan is the settle policy of a cluster whose faults the gateway injects: answers wait
// for every replica free of faults, a grace for the faulty ones that still receive, and
// nothing for the crashed ones. It is the one place that reads the faults.
func (e *Cluster) Plan() settle.Plan {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := settle.Plan{FaultsKnown: true, Faults: make(map[string]string, len(e.ids)), LateGrace: lateGrace}
	for _, id := range e.ids {
		f, ok := e.faults[id]
		if !ok {
			f = node.FaultNone
		}
		p.Faults[id] = string(f)
		switch f {
		case node.FaultNone:
			p.Live = append(p.Live, id)
		case node.FaultSilent:
			p.Receiving = append(p.Receiving, id)
		case node.FaultEquivocate:
			p.Receiving = append(p.Receiving, id)
			p.Replying = append(p.Replying, id)
		case node.FaultCrash:
			p.Crashed = append(p.Crashed, id)
		}
	}
	if len(p.Live) < pbft.NewQuorum(len(e.ids)).Commit() {
		p.NoQuorum = noQuorumWait
	}
	return p
}
