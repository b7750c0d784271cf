package gateway

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
	"github.com/pbft-nats/pbft/pbft/gateway/settle"
)

// Sync waits until every live replica has executed every request ordered so far and
// logged a matching commit for the latest from each live replica. It is what makes the
// answers of status, cluster and fault lines deterministic. It returns the replicas
// taken as live: those the settle policy knows free of faults; with faults not known,
// those that answered (all, or f+1 and whoever followed within the grace).
func (s *Service) Sync(ctx context.Context) []string {
	return s.sync(ctx, s.backend.Plan())
}

func (s *Service) sync(ctx context.Context, p settle.Plan) []string {
	seq := s.maxSeq.Load()
	if !p.FaultsKnown {
		ids, _ := s.members()
		ans := s.queryAll(ctx, p, ids, s.replicaWait(), func(string) *pbft.Query {
			return &pbft.Query{Op: pbft.OpInfo, Wait: &pbft.Wait{MinExecuted: seq}}
		})
		var live []string
		for _, id := range ids {
			if ans[id] != nil {
				live = append(live, id)
			}
		}
		return live
	}
	live := p.Live
	if seq == 0 || seq <= s.waitedInVain.Load() || seq == s.reconfSeq.Load() {
		// The reconfiguration's answer waited until every live member installed it, and
		// members that joined by state transfer logged no commit for it.
		return live
	}
	wait := &pbft.Wait{MinExecuted: seq, CommitsFrom: live}
	ans := s.queryAll(ctx, p, live, s.waitMillis(p), func(string) *pbft.Query {
		return &pbft.Query{Op: pbft.OpStatus, Seq: seq, Wait: wait}
	})
	for _, id := range live {
		if a := ans[id]; a == nil || a.TimedOut {
			storeMax(&s.waitedInVain, seq)
			break
		}
	}
	return live
}

// waitMillis is replicaWait, or the plan's bound once the quorum is lost.
func (s *Service) waitMillis(p settle.Plan) int {
	if p.NoQuorum > 0 {
		return millis(p.NoQuorum)
	}
	return s.replicaWait()
}

// replicaWait bounds a replica's wait so that its answer arrives before the gateway gives up.
func (s *Service) replicaWait() int {
	return millis(s.settings.RequestTimeout * 9 / 10)
}

func millis(d time.Duration) int { return int(d / time.Millisecond) }

// queryAll sends a query to each of ids and collects the answers: from all of them, or,
// with faults not known, until the plan's grace after f+1.
func (s *Service) queryAll(ctx context.Context, p settle.Plan, ids []string, wait int, mk func(id string) *pbft.Query) map[string]*pbft.Answer {
	ctx, cancel := context.WithTimeout(ctx, s.settings.RequestTimeout)
	defer cancel()
	c := s.backend.Client()
	type res struct {
		id string
		a  *pbft.Answer
	}
	_, q := s.members()
	weak := q.Weak() // f+1 of the membership
	ch := make(chan res, len(ids))
	for _, id := range ids {
		q := mk(id)
		if q.WaitMillis == 0 {
			q.WaitMillis = wait
		}
		go func() {
			a, err := c.Query(ctx, id, q)
			if err != nil {
				a = nil
			}
			ch <- res{id, a}
		}()
	}
	out := map[string]*pbft.Answer{}
	var graceEnd <-chan time.Time
	for got := 0; got < len(ids); {
		select {
		case r := <-ch:
			got++
			if r.a != nil {
				out[r.id] = r.a
			}
			if !p.FaultsKnown && len(out) >= weak && graceEnd == nil {
				graceEnd = time.After(p.Grace)
			}
		case <-graceEnd:
			return out
		case <-ctx.Done():
			return out
		}
	}
	return out
}

// StatusResult is the answer to pbft_status.
type StatusResult struct {
	Phase              string
	Prepares, Commits  int
	Executed           bool
	TimedOut           bool
	ReplicaUnreachable bool
}

// Status reports the status of seq at replica dest, once Sync's condition holds.
func (s *Service) Status(ctx context.Context, dest string, seq uint64) (StatusResult, error) {
	p := s.backend.Plan()
	target := s.replica(dest)
	live := s.sync(ctx, p)
	q := &pbft.Query{Op: pbft.OpStatus, Seq: seq}
	wait := s.waitMillis(p)
	// A silent or equivocating replica still receives, so its counts settle like a live
	// one's; only a crashed replica is answered at once, from the state it stopped in.
	if !p.IsCrashed(target) {
		if max := s.maxSeq.Load(); max > 0 && (max > s.waitedInVain.Load() || !p.FaultsKnown) {
			q.Wait = &pbft.Wait{MinExecuted: max, CommitsFrom: live}
		}
	}
	if !p.FaultsKnown {
		// Not knowing whether the replica is down, its wait is bounded like the answers
		// that follow f+1: twice the grace, so that a slow replica still makes it.
		wait = millis(2 * p.Grace)
	}
	ans := s.queryAll(ctx, p, []string{target}, wait, func(string) *pbft.Query { return q })
	a := ans[target]
	if a == nil {
		return StatusResult{}, protoErr(CodeTimeout, "replica %s did not answer", target)
	}
	if a.TimedOut && q.Wait != nil && p.FaultsKnown {
		storeMax(&s.waitedInVain, q.Wait.MinExecuted)
	}
	return StatusResult{Phase: a.Phase, Prepares: a.Prepares, Commits: a.Commits, Executed: a.Executed, TimedOut: a.TimedOut}, nil
}

// ReplicaInfo is one replica's line in pbft_cluster.
type ReplicaInfo struct {
	Node             string
	View             uint64
	LastExecuted     uint64
	StableCheckpoint uint64
	Fault            string
}

// ClusterResult is the answer to pbft_cluster.
type ClusterResult struct {
	View     uint64
	Primary  string
	Replicas []ReplicaInfo
}

// Cluster reports every replica's view and progress, once Sync's condition holds.
func (s *Service) Cluster(ctx context.Context, dest string) (ClusterResult, error) {
	p := s.backend.Plan()
	target := s.replica(dest)
	s.sync(ctx, p)
	seq := s.maxSeq.Load()
	ids, q := s.members()
	ans := s.queryAll(ctx, p, ids, s.replicaWait(), func(id string) *pbft.Query {
		q := &pbft.Query{Op: pbft.OpInfo}
		// A silent or equivocating replica still receives and executes, a moment after
		// the others or not: its line waits for its execution, at most the late grace.
		if p.FaultsKnown && seq > 0 && slices.Contains(p.Receiving, id) {
			q.Wait, q.WaitMillis = &pbft.Wait{MinExecuted: seq}, millis(p.LateGrace)
		}
		return q
	})
	var out ClusterResult
	for _, id := range ids {
		info := ReplicaInfo{Node: id, Fault: string(pbft.FaultNone)}
		if f := p.Faults[id]; f != "" {
			info.Fault = f
		}
		if a := ans[id]; a != nil {
			info.View, info.LastExecuted, info.StableCheckpoint = a.View, a.LastExecuted, a.StableCheckpoint
			if a.Fault != "" && p.FaultsKnown {
				info.Fault = a.Fault
			}
			if id == target {
				out.View, out.Primary = a.View, a.Primary
			}
		} else if !p.FaultsKnown {
			info.Fault = "unreachable"
		}
		out.Replicas = append(out.Replicas, info)
	}
	if out.Primary == "" {
		out.Primary = ids[q.Primary(out.View)]
	}
	return out, nil
}

// Fault switches a replica's behaviour in the embedded cluster, after Sync, so that what
// the replica saw before the switch is exactly what was submitted before it.
func (s *Service) Fault(ctx context.Context, l *jsonl.Line) error {
	id, ok, err := l.String("node")
	if ids, _ := s.members(); err != nil || !ok || !slices.Contains(ids, id) {
		return protoErr(CodeMalformed, "node must name one of %v", ids)
	}
	name, ok, err := l.String("fault")
	if err != nil || !ok {
		return protoErr(CodeMalformed, "fault must be a string")
	}
	if name == "recover" {
		name = string(pbft.FaultNone)
	}
	f, perr := pbft.ParseFault(name)
	if perr != nil || name == "" {
		return protoErr(CodeMalformed, "unknown fault %q: want crash, recover, silent, equivocate or none", name)
	}
	if !s.backend.InProcess() {
		return protoErr(CodeNotSupported, "faults can only be injected into the embedded cluster")
	}
	s.Sync(ctx)
	if err := s.backend.SetFault(id, f); err != nil {
		if errors.Is(err, ErrNotEmbedded) {
			return protoErr(CodeNotSupported, "%v", err)
		}
		return protoErr(CodeMalformed, "%v", err)
	}
	return nil
}
