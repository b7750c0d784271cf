package campaign

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Cluster is what the nemesis does to the multi-process topology. *topology.Topology
// provides these operations (see TopologyCluster); tests use a fake.
type Cluster interface {
	// Replicas are the replica ids, in node_ids order.
	Replicas() []string
	// NATSServers is how many NATS servers there are (faults on them need 3).
	NATSServers() int
	KillReplica(id string) error                      // SIGKILL
	StartReplica(id string, extraEnv ...string) error // (re)start, same data dir
	StopReplica(id string) error                      // SIGSTOP
	ContReplica(id string) error                      // SIGCONT
	CutReplica(id string) error                       // cut its NATS connection
	HealReplica(id string) error                      // restore it
	KillNATS(i int) error
	StartNATS(i int) error
}

// FaultKind names a fault the nemesis injects.
type FaultKind string

// The faults.
const (
	FaultKill       FaultKind = "kill"       // kill -9, restart after the hold (same data dir)
	FaultPause      FaultKind = "pause"      // SIGSTOP, SIGCONT after the hold
	FaultCut        FaultKind = "cut"        // cut the replica's NATS connection, heal after the hold
	FaultNATS       FaultKind = "nats"       // kill a NATS server (of 3), restart after the hold
	FaultEquivocate FaultKind = "equivocate" // restart with PBFT_FAULT=equivocate, then honest again
	FaultSilent     FaultKind = "silent"     // restart with PBFT_FAULT=silent, then honest again
	// FaultForge replaces the replica by a Colluders endpoint with its keys that
	// answers every request with a forged reply, then restarts the real one. One
	// forger (f of them) must change nothing the clients see.
	FaultForge FaultKind = "forge"
	// FaultCollude is the standing fault of byzantine mode: f+1 forgers for the whole run.
	FaultCollude FaultKind = "collude"
)

// MemberFaults are the faults that leave the membership as it is.
var MemberFaults = []FaultKind{FaultKill, FaultPause, FaultCut, FaultNATS, FaultEquivocate, FaultSilent, FaultForge}

// AllFaults are the faults a default campaign draws from: MemberFaults and the
// reconfigurations (reconfig.go).
var AllFaults = append(slices.Clone(MemberFaults), FaultGrow, FaultShrink, FaultReplace)

// ColluderHost is a Cluster that can host Colluders: it knows where the keys are and
// how a replica connects to NATS. *topology.Topology is one.
type ColluderHost interface {
	KeysDir() string
	NATSURL(id string) string
}

// replicaFault reports whether k makes its target replica faulty (and so counts
// against f); a NATS server fault is a network fault, which PBFT must tolerate in any
// number for safety.
func replicaFault(k FaultKind) bool { return k != FaultNATS }

// FaultEvent is one fault of the schedule.
type FaultEvent struct {
	Kind   FaultKind `json:"kind"`
	Target string    `json:"target"` // a replica id, or nats-<i>
	// Offsets from the start of the run: injected, healed (the heal action done) and,
	// for a restarted replica, settled (caught up with the others, or given up on).
	Start   time.Duration `json:"start_ns"`
	Healed  time.Duration `json:"healed_ns"`
	Settled time.Duration `json:"settled_ns,omitempty"`
	Error   string        `json:"error,omitempty"`
	// A reconfiguration's outcome: the configuration in force after it and its members.
	Configuration uint64   `json:"configuration,omitempty"`
	Members       []string `json:"members,omitempty"`
}

// End is when the fault stopped affecting the cluster.
func (e FaultEvent) End() time.Duration { return max(e.Healed, e.Settled) }

// NemesisConfig is the fault schedule's shape.
type NemesisConfig struct {
	Seed   uint64
	Faults []FaultKind
	// Lead are kinds drawn first, in this order, before the seeded rounds of Faults.
	// Each one starts even when the fault phase has ended meanwhile (it waits for room
	// and its gap as any other; only Abort stops it), so that a run has them whatever
	// its timing: a test can count on them.
	Lead []FaultKind
	// F is how many replicas may be faulty at once, (n-1)/3 normally. When the nemesis
	// reconfigures, f' of the membership in force takes its place.
	F int
	// MaxMembers bounds the membership a grow makes (default: the initial size + 2);
	// FreshIDs are the ids the replicas it adds take, in order, each once (nil:
	// replica-<n+i> without end; with NATS auth, the replica users auth.conf has beyond
	// the initial ones): once they are used up a grow or replace shrinks instead, and
	// when the membership cannot shrink either, reconfigurations end; ReconfigTimeout
	// bounds one reconfiguration, joiner start included (default 60 s); JoinTimeout
	// bounds a joiner's catch-up after it (default 2 min: a joiner that misses the old
	// members' checkpoint at the reconfiguration installs the next checkpoint of its
	// configuration, which a slow cluster may take a minute to reach).
	MaxMembers      int
	FreshIDs        []string
	ReconfigTimeout time.Duration
	JoinTimeout     time.Duration
	// Gap between faults and how long a fault is held, drawn uniformly.
	MinGap, MaxGap   time.Duration
	MinHold, MaxHold time.Duration
	// Settle waits until a restarted replica caught up (nil: do not wait); it is
	// bounded by SettleTimeout.
	Settle        func(ctx context.Context, id string) error
	SettleTimeout time.Duration
	// Abort cuts settling short when it ends (an interrupted run has nothing to wait
	// for); nil: settling is bounded by SettleTimeout only.
	Abort context.Context
	Logf  func(format string, args ...any)
	// Cluster is PBFT_CLUSTER, for forgers (default "pbft").
	Cluster string
}

// Nemesis injects faults into a Cluster on a seeded schedule.
type Nemesis struct {
	c     Cluster
	cfg   NemesisConfig
	rng   *rand.Rand
	since func() time.Duration
	deck  []FaultKind   // the kinds still to draw in this round
	lead  []FaultKind   // Lead kinds not drawn yet
	freed chan struct{} // a fault ended

	mu       sync.Mutex
	busy     map[string]bool // replicas and nats-<i> with a fault in progress
	faulty   int             // replicas counted against F (f' with reconfigurations)
	members  []string        // the membership in force
	reconfig bool            // the nemesis may reconfigure
	// reconfiguring: a reconfiguration is under way (one at a time); fresh counts the
	// replicas added; reconfigEnd says why reconfigurations ended ("" while they go on).
	reconfiguring bool
	fresh         int
	initial       int // the initial membership's size
	reconfigEnd   string
	events        []FaultEvent
	maxFault      int // the most replicas faulty at once
	wg            sync.WaitGroup
}

// NewNemesis returns a nemesis over c; since gives the run's clock.
func NewNemesis(c Cluster, cfg NemesisConfig, since func() time.Duration) *Nemesis {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.MaxGap < cfg.MinGap {
		cfg.MaxGap = cfg.MinGap
	}
	if cfg.MaxHold < cfg.MinHold {
		cfg.MaxHold = cfg.MinHold
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "pbft"
	}
	var kinds []FaultKind
	for _, k := range cfg.Faults {
		if supported(c, k) && !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	cfg.Faults = kinds
	var lead []FaultKind
	for _, k := range cfg.Lead {
		if supported(c, k) {
			lead = append(lead, k)
		}
	}
	members := c.Replicas()
	if cfg.MaxMembers <= 0 {
		cfg.MaxMembers = len(members) + 2
	}
	if cfg.ReconfigTimeout <= 0 {
		cfg.ReconfigTimeout = time.Minute
	}
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = 2 * time.Minute
	}
	return &Nemesis{c: c, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6e656d65736973)), since: since,
		busy: map[string]bool{}, freed: make(chan struct{}, 1), members: members, initial: len(members), lead: lead,
		reconfig: slices.ContainsFunc(kinds, reconfigFault) || slices.ContainsFunc(lead, reconfigFault)}
}

// budget is how many replicas may be faulty at once: F, or with reconfigurations f' of
// the membership in force. Called with mu held.
func (n *Nemesis) budget() int {
	if n.reconfig {
		return fOf(len(n.members))
	}
	return n.cfg.F
}

// supported reports whether c can suffer faults of kind k.
func supported(c Cluster, k FaultKind) bool {
	switch k {
	case FaultNATS:
		return c.NATSServers() >= 3
	case FaultForge:
		_, ok := c.(ColluderHost)
		return ok
	case FaultCollude:
		return false // byzantine mode sets it up itself
	case FaultGrow, FaultShrink, FaultReplace:
		_, ok := c.(Reconfigurable)
		return ok
	}
	return true
}

// next draws the next kind: the Lead kinds first (lead true), then every supported kind
// once per round, in a random order, so that a short run still sees each of them.
func (n *Nemesis) next() (kind FaultKind, lead bool) {
	if len(n.lead) > 0 {
		k := n.lead[0]
		n.lead = n.lead[1:]
		return k, true
	}
	if len(n.deck) == 0 {
		n.deck = slices.Clone(n.cfg.Faults)
		n.rng.Shuffle(len(n.deck), func(i, j int) { n.deck[i], n.deck[j] = n.deck[j], n.deck[i] })
	}
	k := n.deck[0]
	n.deck = n.deck[1:]
	return k, false
}

func (n *Nemesis) draw(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)))
}

// Run injects faults until ctx ends, then heals the faults in progress and returns
// once every one has healed (and settled).
func (n *Nemesis) Run(ctx context.Context) {
	defer n.wg.Wait()
	if len(n.cfg.Faults) == 0 && len(n.lead) == 0 {
		<-ctx.Done()
		return
	}
	for {
		if len(n.cfg.Faults) == 0 && len(n.lead) == 0 {
			<-ctx.Done()
			return
		}
		// The draws (kind, gap, target, hold) come in a fixed order, and a fault waits
		// for room (at most F faulty replicas, one NATS server down) before its gap
		// starts: with F=1 the seed fixes the whole schedule, only its timing varies.
		kind, lead := n.next()
		stop := ctx
		if lead {
			stop = context.Background() // a Lead kind starts whenever the phase ends
			if n.cfg.Abort != nil {
				stop = n.cfg.Abort
			}
		} else if ctx.Err() != nil {
			return
		}
		over := false
		for !n.room(kind) {
			if over = n.reconfigsOver(kind); over {
				break
			}
			select {
			case <-stop.Done():
				return
			case <-n.freed:
			}
		}
		if over {
			n.endReconfigs()
			continue
		}
		if !wait(stop, n.draw(n.cfg.MinGap, n.cfg.MaxGap)) {
			return
		}
		if reconfigFault(kind) {
			p, ok := n.planReconfig(kind)
			if !ok {
				continue // cannot happen: only Run reserves
			}
			hold := n.draw(n.cfg.MinHold, n.cfg.MaxHold)
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.reconfigure(ctx, p, hold)
			}()
			continue
		}
		target, ok := n.pick(kind)
		if !ok {
			continue // cannot happen: only Run reserves
		}
		hold := n.draw(n.cfg.MinHold, n.cfg.MaxHold)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.inject(ctx, kind, target, hold)
		}()
	}
}

// inject runs one fault: inject, hold (cut short when ctx ends), heal, settle.
func (n *Nemesis) inject(ctx context.Context, kind FaultKind, target string, hold time.Duration) {
	ev := FaultEvent{Kind: kind, Target: target, Start: n.since()}
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	n.cfg.Logf("nemesis %8.3fs: %s %s (hold %v)", ev.Start.Seconds(), kind, target, hold.Round(time.Millisecond))
	var heal func() error
	restarted := false
	switch kind {
	case FaultKill:
		note(n.c.KillReplica(target))
		heal = func() error { return n.c.StartReplica(target) }
		restarted = true
	case FaultPause:
		note(n.c.StopReplica(target))
		heal = func() error { return n.c.ContReplica(target) }
	case FaultCut:
		note(n.c.CutReplica(target))
		heal = func() error { return n.c.HealReplica(target) }
	case FaultNATS:
		i := natsIndex(target)
		note(n.c.KillNATS(i))
		heal = func() error { return n.c.StartNATS(i) }
	case FaultEquivocate, FaultSilent:
		note(n.c.KillReplica(target))
		note(n.c.StartReplica(target, "PBFT_FAULT="+string(kind)))
		heal = func() error {
			if err := n.c.KillReplica(target); err != nil {
				return err
			}
			return n.c.StartReplica(target)
		}
		restarted = true
	case FaultForge:
		note(n.c.KillReplica(target))
		host := n.c.(ColluderHost) // supported() checked
		col, err := StartColluders(ColluderConfig{IDs: []string{target}, Replicas: n.Members(), Cluster: n.cfg.Cluster,
			KeysDir: host.KeysDir(), NATSURL: host.NATSURL})
		note(err)
		heal = func() error {
			if col != nil {
				n.cfg.Logf("nemesis %8.3fs: forger %s sent %d forged replies", n.since().Seconds(), target, col.Forged())
				col.Stop()
			}
			return n.c.StartReplica(target)
		}
		restarted = true
	default:
		note(fmt.Errorf("campaign: unknown fault %q", kind))
		heal = func() error { return nil }
	}
	wait(ctx, hold)
	note(heal())
	ev.Healed = n.since()
	if restarted && n.cfg.Settle != nil {
		sctx, cancel := context.WithTimeout(context.Background(), n.cfg.SettleTimeout)
		if n.cfg.Abort != nil {
			defer context.AfterFunc(n.cfg.Abort, cancel)()
		}
		if err := n.cfg.Settle(sctx, target); err != nil {
			note(fmt.Errorf("not caught up: %w", err))
		}
		cancel()
		ev.Settled = n.since()
	}
	if err := errors.Join(errs...); err != nil {
		ev.Error = err.Error()
	}
	n.cfg.Logf("nemesis %8.3fs: healed %s %s%s", n.since().Seconds(), kind, target, errSuffix(ev.Error))
	n.mu.Lock()
	n.events = append(n.events, ev)
	delete(n.busy, target)
	if replicaFault(kind) {
		n.faulty--
	}
	n.mu.Unlock()
	n.signalFreed()
}

// signalFreed wakes Run waiting for room.
func (n *Nemesis) signalFreed() {
	select {
	case n.freed <- struct{}{}:
	default:
	}
}

func errSuffix(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// Events returns the faults injected so far, by start time.
func (n *Nemesis) Events() []FaultEvent {
	n.mu.Lock()
	defer n.mu.Unlock()
	ev := slices.Clone(n.events)
	slices.SortStableFunc(ev, func(a, b FaultEvent) int { return cmp.Compare(a.Start, b.Start) })
	return ev
}

// MaxFaulty is the most replicas that were faulty at the same time.
func (n *Nemesis) MaxFaulty() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.maxFault
}

// wait waits d or until ctx ends; false means ctx ended.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
