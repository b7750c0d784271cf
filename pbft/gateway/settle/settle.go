// Package settle decides how long a gateway's answer waits and for whom. The handler asks
// its Policy once per answer for a Plan and follows it: against replicas it runs itself,
// the gateway knows which are faulty and waits for exactly the others; against external
// replicas it knows nothing and waits for f+1 of them (for a result, a quorum of matching
// replies), then a grace for the rest.
package settle

import (
	"slices"
	"time"
)

// Policy gives each answer its Plan.
type Policy interface {
	// Plan is asked once per answer; the answer follows it to the end, so that all its
	// waits agree on who is live.
	Plan() Plan
}

// Plan is how one answer waits: for which replicas, and how long.
type Plan struct {
	// FaultsKnown is set when the policy knows every replica's fault (it injects them).
	// Otherwise every replica is presumed live, and an answer waits for f+1 of them, then
	// Grace for the rest.
	FaultsKnown bool
	// Live are the replicas free of faults: an answer waits for each of them.
	Live []string
	// Receiving are faulty replicas that still receive and execute (silent,
	// equivocating): an answer waits for their execution at most LateGrace.
	Receiving []string
	// Replying are those of Receiving that also still reply to clients (equivocating):
	// once the live ones replied, an answer asks them whether they executed the request
	// and waits for what they report (at most LateGrace), not for a fixed time.
	Replying []string
	// Crashed are replicas that receive nothing: asked, they answer at once from the
	// state they stopped in.
	Crashed []string
	// Faults is each replica's fault as an answer reports it when the replica does not
	// say itself.
	Faults map[string]string
	// LateGrace bounds how long Receiving and Replying replicas are given to report
	// their execution.
	LateGrace time.Duration
	// NoQuorum, when set, bounds every wait: fewer than 2f+1 replicas are live, so no new
	// request commits and an answer waits only for what is already on its way.
	NoQuorum time.Duration
	// Grace is how long an answer waits for the rest once f+1 replicas answered (a
	// quorum of matching replies, for a result) when faults are not known.
	Grace time.Duration
}

// IsCrashed reports whether id is among p.Crashed.
func (p Plan) IsCrashed(id string) bool { return slices.Contains(p.Crashed, id) }

// IsLive reports whether id is among p.Live.
func (p Plan) IsLive(id string) bool { return slices.Contains(p.Live, id) }

// maxGrace caps Grace: beyond it a missing replica is taken as down, not slow, and
// answers against a cluster with a replica down should not each cost a long wait.
const maxGrace = 250 * time.Millisecond

// AfterQuorum is the policy for replicas the gateway does not run: all presumed live,
// and a grace of a sixteenth of the request timeout (at most maxGrace) after f+1.
func AfterQuorum(ids []string, requestTimeout time.Duration) Policy {
	return afterQuorum{Plan{Live: slices.Clone(ids), Grace: min(requestTimeout/16, maxGrace)}}
}

type afterQuorum struct{ plan Plan }

func (a afterQuorum) Plan() Plan { return a.plan }
