package campaign

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config is one campaign run.
type Config struct {
	// Duration is how long clients run: the fault phase, then After with every
	// fault healed.
	Duration time.Duration
	After    time.Duration // 0: a sixth of Duration, between 5 s and 60 s
	Workload Workload
	Seed     uint64
	Nodes    int // replicas, for the report and f
	// Faults the nemesis draws from (nil: none); F caps faulty replicas at once
	// (default (Nodes-1)/3). Lead are faults it injects first, in order, even past the
	// fault phase (NemesisConfig.Lead): what a test asserts happened.
	Faults           []FaultKind
	Lead             []FaultKind
	F                int
	MinGap, MaxGap   time.Duration
	MinHold, MaxHold time.Duration
	// MaxNodes bounds the membership the grow reconfigurations make (default Nodes+2);
	// FreshIDs are the ids the replicas they add take, each once (NemesisConfig.FreshIDs;
	// nil: replica-<Nodes+i> without end).
	MaxNodes int
	FreshIDs []string
	// Byzantine marks the f+1 mode: more replicas are Byzantine than PBFT tolerates,
	// and the run passes only if the checks notice. Colluding names them (for the
	// report); the nemesis is off.
	Byzantine bool
	Colluding []string
	// ByzantineFault is what the f+1 replicas do: FaultForge (default; colluding
	// forgers), FaultEquivocate or FaultSilent (the built-in behaviours).
	ByzantineFault FaultKind
	// NATSServers and NATSAuth (NATS with auth.conf's users and permissions) are for
	// the report (RunTopology sets them).
	NATSServers int
	NATSAuth    bool
	// ClientTimeout bounds one HTTP request (default 10 s).
	ClientTimeout   time.Duration
	CheckTimeout    time.Duration // porcupine (default 2 min)
	ConvergeTimeout time.Duration // after healing (default 60 s)
	SettleTimeout   time.Duration // a restarted replica catching up (default 30 s)
	Out             string        // report directory ("" writes nothing)
	Logf            func(format string, args ...any)

	// Digests asks every replica for its state digest after the final reads (nil:
	// compare by the final reads only).
	Digests DigestSource

	// settle waits for a restarted replica (default: until it caught up, as the
	// gateway's pbft_cluster shows).
	settle func(ctx context.Context, id string) error
}

func (c *Config) defaults() {
	if c.Workload.Clients <= 0 {
		c.Workload.Clients = 8
	}
	if c.Workload.Keys <= 0 {
		c.Workload.Keys = 5
	}
	if c.Workload.ReadPct == 0 && c.Workload.DeletePct == 0 {
		c.Workload.ReadPct, c.Workload.DeletePct = 50, 10
	}
	if c.Workload.OrderedPct == 0 {
		c.Workload.OrderedPct = 50
	}
	if c.Nodes <= 0 {
		c.Nodes = 4
	}
	if c.F <= 0 {
		c.F = max((c.Nodes-1)/3, 1)
	}
	if c.After <= 0 {
		c.After = min(max(c.Duration/6, 5*time.Second), time.Minute)
	}
	if c.MinGap <= 0 {
		c.MinGap, c.MaxGap = 2*time.Second, 5*time.Second
	}
	if c.MinHold <= 0 {
		c.MinHold, c.MaxHold = 2*time.Second, 6*time.Second
	}
	if c.ClientTimeout <= 0 {
		c.ClientTimeout = 10 * time.Second
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = max(2*time.Minute, c.Duration/3) // long runs have long histories
	}
	if c.ConvergeTimeout <= 0 {
		c.ConvergeTimeout = time.Minute
		if c.Byzantine {
			c.ConvergeTimeout = 10 * time.Second
		}
	}
	if c.SettleTimeout <= 0 {
		c.SettleTimeout = 30 * time.Second
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// VerdictInterrupted is the verdict of a run cut short (a signal, its output closed)
// whose history shows nothing wrong so far.
const VerdictInterrupted = "interrupted"

// ErrSetup reports a run that could not start: the cluster never served.
var ErrSetup = errors.New("campaign: setup")

// Run drives clients against the gateway at gatewayURL while the nemesis injects
// faults into cluster, heals everything, waits for the replicas to converge, reads every
// key, checks the history for linearizability and writes the report. The error is
// for a run that could not be carried out; what the checks found is in the report.
func Run(ctx context.Context, cfg Config, gatewayURL string, cluster Cluster) (*Report, error) {
	cfg.defaults()
	kv := NewKVClient(gatewayURL, cfg.ClientTimeout)
	defer kv.Close()
	mode := "faults"
	if cfg.Byzantine {
		if cfg.ByzantineFault == "" {
			cfg.ByzantineFault = FaultForge
		}
		mode = "byzantine-f+1 (" + string(cfg.ByzantineFault) + ")"
	}
	rep := &Report{Seed: cfg.Seed, Mode: mode, Nodes: cfg.Nodes, F: (cfg.Nodes - 1) / 3, Clients: cfg.Workload.Clients,
		Keys: cfg.Workload.Keys, Duration: cfg.Duration, FaultCounts: map[FaultKind]int{}, NATSServers: cfg.NATSServers, NATSAuth: cfg.NATSAuth,
		Think: cfg.Workload.Think}
	if !cfg.Byzantine {
		rep.FaultKinds = cfg.Faults
	} else {
		rep.ByzantineFault = cfg.ByzantineFault
	}
	if !cfg.Byzantine {
		if err := waitServing(ctx, kv, time.Minute); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSetup, err)
		}
	}
	start := time.Now()
	rep.StartedAt = start
	h := NewHistory(start)
	if cfg.Byzantine {
		cfg.Logf("campaign: seed %d, %d clients on %d keys for %v against %d Byzantine replicas %v (%s), n=%d",
			cfg.Seed, cfg.Workload.Clients, cfg.Workload.Keys, cfg.Duration, len(cfg.Colluding), cfg.Colluding, cfg.ByzantineFault, cfg.Nodes)
	} else {
		cfg.Logf("campaign: seed %d, %d clients on %d keys, %v (faults %v, then %v healed), n=%d f=%d, faults %v",
			cfg.Seed, cfg.Workload.Clients, cfg.Workload.Keys, cfg.Duration, cfg.Duration-cfg.After, cfg.After, cfg.Nodes, cfg.F, cfg.Faults)
	}

	clientsCtx, stopClients := context.WithTimeout(ctx, cfg.Duration)
	defer stopClients()
	clientsDone := make(chan struct{})
	go func() {
		defer close(clientsDone)
		runClients(clientsCtx, ctx, kv, cfg.Workload, cfg.Seed, h)
	}()
	go progress(clientsCtx, cfg.Logf, h)

	var nem *Nemesis
	if cfg.settle == nil {
		cfg.settle = kv.WaitCaughtUp
	}
	if cluster != nil && len(cfg.Faults)+len(cfg.Lead) > 0 && !cfg.Byzantine {
		nem = NewNemesis(cluster, NemesisConfig{Seed: cfg.Seed, Faults: cfg.Faults, Lead: cfg.Lead, F: cfg.F, MaxMembers: cfg.MaxNodes, FreshIDs: cfg.FreshIDs,
			MinGap: cfg.MinGap, MaxGap: cfg.MaxGap, MinHold: cfg.MinHold, MaxHold: cfg.MaxHold,
			Settle: cfg.settle, SettleTimeout: cfg.SettleTimeout, Abort: ctx, Logf: cfg.Logf}, h.Now)
		faultCtx, stopFaults := context.WithTimeout(ctx, cfg.Duration-cfg.After)
		nem.Run(faultCtx) // returns once every fault has healed
		stopFaults()
	}
	var standing []FaultEvent
	if cfg.Byzantine { // the colluders stay for the whole run
		<-clientsDone
		kind := FaultCollude
		if cfg.ByzantineFault != FaultForge {
			kind = cfg.ByzantineFault
		}
		standing = append(standing, FaultEvent{Kind: kind, Target: strings.Join(cfg.Colluding, "+"), Healed: h.Now()})
	}
	rep.HealedAt = h.Now()
	// The final configuration's members are the ones that must converge and agree.
	rep.Members = ReplicaIDs(cfg.Nodes)
	if cluster != nil {
		rep.Members = cluster.Replicas()
	}
	if nem != nil {
		rep.Members = nem.Members()
	}
	if !cfg.Byzantine {
		cfg.Logf("campaign %8.3fs: faults over, all healed; clients continue", rep.HealedAt.Seconds())
	}
	<-clientsDone
	cfg.Logf("campaign %8.3fs: clients done, %d operations", h.Now().Seconds(), len(h.Ops()))

	if ctx.Err() != nil {
		// Interrupted: the cluster is going away, so convergence and the final reads
		// would only report the interruption; the history gathered is still checked.
		rep.Interrupted, rep.InterruptedAt = context.Cause(ctx).Error(), h.Now()
		cfg.Logf("campaign %8.3fs: interrupted (%s): checking the %d operations gathered", h.Now().Seconds(), rep.Interrupted, len(h.Ops()))
	} else {
		// Convergence, then a read of every key that every replica must answer alike.
		st, err := kv.WaitConverged(ctx, cfg.ConvergeTimeout)
		rep.ClusterState, rep.Converged = st, err == nil
		if err != nil {
			rep.ConvergeError = err.Error()
		}
		if note := viewNote(st); note != "" {
			rep.Notes = append(rep.Notes, note)
		}
		rep.FinalReads = finalReads(ctx, kv, cfg, len(rep.Members), h)
		if cfg.Digests != nil {
			rep.Digests = cfg.Digests(ctx, rep.Members)
		}
		if ctx.Err() != nil { // interrupted during the checks: what they found is incomplete
			rep.Interrupted, rep.InterruptedAt = context.Cause(ctx).Error(), h.Now()
		}
	}
	ops := h.Ops()
	rep.Ops = CountOps(ops)
	if nem != nil {
		rep.Faults = nem.Events()
		rep.MaxFaulty = nem.MaxFaulty()
		if end := nem.ReconfigEnd(); end != "" {
			rep.Notes = append(rep.Notes, end)
		}
	}
	if len(standing) > 0 {
		rep.Faults = append(rep.Faults, standing...)
		rep.MaxFaulty = len(cfg.Colluding)
	}
	for _, f := range rep.Faults {
		rep.FaultCounts[f.Kind]++
	}
	rep.Latency = splitLatencies(ops, rep.Faults, rep.HealedAt)
	cfg.Logf("campaign: checking %d operations for linearizability", len(ops))
	rep.Linearizable = CheckLinearizable(ops, cfg.CheckTimeout, cfg.Out)
	judge(rep, cfg)
	if cfg.Out != "" {
		if err := rep.Write(cfg.Out, ops); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// finalReads reads every key until all n members give the same answer (at most 5
// reads, at most 2 of them failed; one read in byzantine mode), recording the reads in
// the history.
func finalReads(ctx context.Context, kv *KVClient, cfg Config, n int, h *History) []FinalRead {
	var out []FinalRead
	tries, failures := 5, 2
	if cfg.Byzantine {
		tries = 1
	}
	for i := range cfg.Workload.Keys {
		key := KeyName(i)
		var fr FinalRead
		failed := 0
		for try := 0; try < tries && failed < failures && ctx.Err() == nil; try++ {
			invoke := h.Now()
			r := kv.Do(ctx, KindGet, key, "")
			h.Add(Op{Process: -1 - i, Client: -1, Kind: KindGet, Key: key, Value: r.Value, Status: r.Status,
				Invoke: invoke, Complete: h.Now(), HTTP: r.HTTP, Error: r.Err, Seq: r.Seq, Replies: r.Replies, Ordered: r.Ordered, Final: true})
			fr = FinalRead{Key: key, OK: r.Status == StatusOK, Value: r.Value, Replies: r.Replies, Error: r.Err}
			if fr.OK && fr.Replies >= n {
				break
			}
			if !fr.OK {
				failed++
			}
		}
		out = append(out, fr)
	}
	return out
}

// progress logs the number of operations every few seconds until ctx ends.
func progress(ctx context.Context, logf func(string, ...any), h *History) {
	for wait(ctx, 5*time.Second) {
		c := CountOps(h.Ops())
		logf("campaign %8.3fs: %d operations (%d ok, %d failed, %d indeterminate); reads: %v",
			h.Now().Seconds(), c.Total, c.OK, c.Fail, c.Indeterminate, c.Reads)
	}
}

// judge fills in Problems, StateCompare and the verdict.
func judge(rep *Report, cfg Config) {
	if rep.Interrupted != "" {
		judgeInterrupted(rep, cfg)
		return
	}
	var problems []string
	agree := 0
	n := rep.finalNodes()
	for _, f := range rep.FinalReads {
		switch {
		case !f.OK:
			problems = append(problems, fmt.Sprintf("final read of %s failed: %s", f.Key, f.Error))
		case f.Replies < n:
			problems = append(problems, fmt.Sprintf("final read of %s: only %d of %d replicas gave the same answer", f.Key, f.Replies, n))
		default:
			agree++
		}
	}
	reads := fmt.Sprintf("final reads: %d of %d keys answered identically by all %d replicas", agree, len(rep.FinalReads), n)
	if rep.Digests == nil {
		rep.StateCompare = "no state digests asked for; " + reads
	} else {
		same, how := compareDigests(rep.Digests)
		rep.DigestsEqual = same
		rep.StateCompare = "state digests (OpInfo): " + how + "; " + reads
		if !same {
			problems = append(problems, "replica state digests differ: "+how)
		}
	}
	if !rep.Converged {
		problems = append(problems, "replicas did not converge: "+rep.ConvergeError)
	}
	switch rep.Linearizable.Result {
	case "Ok":
	case "Illegal":
		problems = append(problems, "history is not linearizable: "+rep.Linearizable.Detail)
	default:
		problems = append(problems, "linearizability check did not finish within its timeout")
	}
	for _, f := range rep.Faults {
		if f.Error != "" && !cfg.Byzantine {
			problems = append(problems, fmt.Sprintf("fault %s %s at %.3fs: %s", f.Kind, f.Target, f.Start.Seconds(), f.Error))
		}
	}
	rep.Problems = problems
	noProgress := rep.Ops.OK == 0
	switch {
	case cfg.Byzantine && rep.Linearizable.Result == "Illegal":
		rep.Verdict, rep.Why = "pass", "f+1 Byzantine replicas broke linearizability, and the checker caught it"
	case cfg.Byzantine && noProgress:
		rep.Verdict, rep.Why = "pass", fmt.Sprintf("f+1 Byzantine replicas: no operation completed (liveness lost: %d indeterminate, %d failed)",
			rep.Ops.Indeterminate, rep.Ops.Fail)
	case cfg.Byzantine && len(problems) > 0:
		rep.Verdict, rep.Why = "pass", "f+1 Byzantine replicas: the checks found what went wrong: "+problems[0]
	case cfg.Byzantine:
		rep.Verdict, rep.Why = "fail", "f+1 Byzantine replicas and the checks found nothing wrong"
	case noProgress:
		rep.Verdict, rep.Why = "fail", "no operation was acknowledged"
		rep.Problems = append(rep.Problems, rep.Why)
	case len(problems) > 0:
		rep.Verdict, rep.Why = "fail", problems[0]
	default:
		digests := ""
		if rep.DigestsEqual {
			digests = "equal state digests, "
		}
		rep.Verdict, rep.Why = "pass", fmt.Sprintf("linearizable, converged, %sall %d keys read identically on every replica, %d faults within f=%d",
			digests, len(rep.FinalReads), len(rep.Faults), rep.F)
		if k := len(reconfigSummary(rep.Faults)); k > 0 {
			rep.Why += fmt.Sprintf(" (f' of the membership in force), %d reconfigurations, final members %v", k, rep.Members)
		}
	}
}

// judgeInterrupted judges an interrupted run by the history it gathered: only a
// history that is not linearizable is a finding (a failure, or in byzantine mode the
// checks catching the colluders); anything else is "interrupted", never "fail", since
// convergence and the final reads were cut short.
func judgeInterrupted(rep *Report, cfg Config) {
	rep.StateCompare = "not compared: the run was interrupted"
	rep.Problems = nil
	if rep.Linearizable.Result == "Illegal" {
		rep.Problems = []string{"history is not linearizable: " + rep.Linearizable.Detail}
		if cfg.Byzantine {
			rep.Verdict, rep.Why = "pass", "f+1 Byzantine replicas broke linearizability, and the checker caught it (before the run was interrupted)"
		} else {
			rep.Verdict, rep.Why = "fail", "history is not linearizable (the run was interrupted, but what it gathered already fails): "+rep.Linearizable.Detail
		}
		return
	}
	lin := "the operations gathered are linearizable"
	if rep.Linearizable.Result != "Ok" {
		lin = "the linearizability check of the operations gathered did not finish"
	}
	rep.Verdict = VerdictInterrupted
	rep.Why = fmt.Sprintf("interrupted (%s) at %.3fs of %v: %s (%d operations); convergence and final reads were not checked",
		rep.Interrupted, rep.InterruptedAt.Seconds(), rep.Duration, lin, rep.Ops.Total)
}
