package campaign

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Latency summarises the latencies of acknowledged operations.
type Latency struct {
	N   int           `json:"n"`
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

func (l Latency) String() string {
	if l.N == 0 {
		return "no operations"
	}
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", l.N, l.P50.Round(100*time.Microsecond),
		l.P99.Round(100*time.Microsecond), l.Max.Round(100*time.Microsecond))
}

func latencyOf(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration {
		i := int(p*float64(len(ds))+0.5) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return Latency{N: len(ds), P50: q(0.50), P99: q(0.99), Max: ds[len(ds)-1]}
}

// Latencies splits acknowledged operations by when they ran: overlapping a fault
// (from injection until healed and caught up), during the fault phase but clear of any
// fault, and after everything healed.
type Latencies struct {
	DuringFaults Latency `json:"during_faults"`
	BetweenFault Latency `json:"between_faults"`
	AfterHeal    Latency `json:"after_heal"`
}

func splitLatencies(ops []Op, faults []FaultEvent, healedAt time.Duration) Latencies {
	var during, between, after []time.Duration
	for _, o := range ops {
		if o.Status != StatusOK || o.Final {
			continue
		}
		switch {
		case o.Invoke >= healedAt:
			after = append(after, o.Latency())
		case overlapsFault(o, faults):
			during = append(during, o.Latency())
		default:
			between = append(between, o.Latency())
		}
	}
	return Latencies{DuringFaults: latencyOf(during), BetweenFault: latencyOf(between), AfterHeal: latencyOf(after)}
}

func overlapsFault(o Op, faults []FaultEvent) bool {
	for _, f := range faults {
		if o.Invoke <= f.End() && o.Complete >= f.Start {
			return true
		}
	}
	return false
}

// FinalRead is the read of one key after every fault healed.
type FinalRead struct {
	Key     string `json:"key"`
	OK      bool   `json:"ok"`
	Value   string `json:"value"`
	Replies int    `json:"replies"` // matching replies: n means every replica agrees
	Error   string `json:"error,omitempty"`
}

// Report is what a run found.
type Report struct {
	Seed     uint64        `json:"seed"`
	Mode     string        `json:"mode"` // "faults" or "byzantine-f+1"
	Nodes    int           `json:"nodes"`
	F        int           `json:"f"`
	Clients  int           `json:"clients"`
	Keys     int           `json:"keys"`
	Duration time.Duration `json:"duration_ns"`
	// NATSServers and FaultKinds (what the nemesis drew from) complete the rerun line.
	NATSServers int           `json:"nats_servers,omitempty"`
	NATSAuth    bool          `json:"nats_auth"` // NATS with deploy/k8s/nats/auth.conf's users and permissions
	FaultKinds  []FaultKind   `json:"fault_kinds,omitempty"`
	Think       time.Duration `json:"think_ns,omitempty"`
	// ByzantineFault is what the f+1 replicas did in byzantine mode.
	ByzantineFault FaultKind `json:"byzantine_fault,omitempty"`
	StartedAt      time.Time `json:"started_at"`

	Ops         Counts            `json:"ops"`
	Faults      []FaultEvent      `json:"faults"`
	FaultCounts map[FaultKind]int `json:"fault_counts"`
	MaxFaulty   int               `json:"max_faulty_replicas"`
	Latency     Latencies         `json:"latency"`
	// HealedAt is when the fault phase ended and every fault had healed.
	HealedAt time.Duration `json:"healed_at_ns"`

	// Members are the final configuration's members: those that must converge and
	// agree (the initial replicas unless the nemesis reconfigured).
	Members       []string        `json:"final_members,omitempty"`
	Converged     bool            `json:"converged"`
	ClusterState  ClusterState    `json:"cluster_state"`
	ConvergeError string          `json:"converge_error,omitempty"`
	FinalReads    []FinalRead     `json:"final_reads"`
	Digests       []ReplicaDigest `json:"digests,omitempty"`
	DigestsEqual  bool            `json:"digests_equal"`
	StateCompare  string          `json:"state_compare"`
	Linearizable  Linearizability `json:"linearizability"`

	// Problems are what the checks found wrong; Verdict is "pass" or "fail". In
	// byzantine mode a run passes when the checks DO find something wrong (or no
	// operation completes: lost liveness), since f+1 faulty replicas are beyond what
	// PBFT tolerates.
	Problems []string `json:"problems"`
	// Notes are observations that do not fail a run (e.g. replicas left in different views).
	Notes []string `json:"notes,omitempty"`
	// Interrupted is why the run was cut short ("" when it ran to its end), and
	// InterruptedAt when: the report then covers the history gathered until then.
	Interrupted   string        `json:"interrupted,omitempty"`
	InterruptedAt time.Duration `json:"interrupted_at_ns,omitempty"`
	Verdict       string        `json:"verdict"`
	Why           string        `json:"why"`
	Dir           string        `json:"dir,omitempty"`
}

// Write stores report.json, report.txt and history.json in dir.
func (r *Report) Write(dir string, ops []Op) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.Dir = dir
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.txt"), []byte(r.Text()), 0o644); err != nil {
		return err
	}
	hist, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "history.json"), hist, 0o644)
}

// Rerun is the cmd/campaign command line that replays this run's workload and schedule.
func (r *Report) Rerun() string {
	s := fmt.Sprintf("go run ./cmd/campaign -seed %d -duration %v -clients %d -keys %d -nodes %d", r.Seed, r.Duration, r.Clients, r.Keys, r.Nodes)
	if r.NATSServers > 0 {
		s += fmt.Sprintf(" -nats %d", r.NATSServers)
	}
	if r.Think > 0 {
		s += fmt.Sprintf(" -think %v", r.Think)
	}
	if r.Mode != "faults" {
		s += " -byzantine"
		if r.ByzantineFault != FaultForge {
			s += " -byzantine-fault " + string(r.ByzantineFault)
		}
		return s
	}
	if !slices.Equal(r.FaultKinds, AllFaults) && len(r.FaultKinds) > 0 {
		names := make([]string, len(r.FaultKinds))
		for i, k := range r.FaultKinds {
			names[i] = string(k)
		}
		s += " -faults " + strings.Join(names, ",")
	}
	return s
}

// Text is the human-readable report.
func (r *Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "PBFT fault campaign: %s\n", strings.ToUpper(r.Verdict))
	fmt.Fprintf(&b, "  seed %d (rerun: %s)\n", r.Seed, r.Rerun())
	auth := "off"
	if r.NATSAuth {
		auth = "on (deploy/k8s/nats/auth.conf)"
	}
	fmt.Fprintf(&b, "  mode %s, n=%d f=%d, NATS auth %s, started %s\n", r.Mode, r.Nodes, r.F, auth, r.StartedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "  why: %s\n", r.Why)
	fmt.Fprintf(&b, "\nOperations: %d total, %d ok, %d failed, %d indeterminate\n", r.Ops.Total, r.Ops.OK, r.Ops.Fail, r.Ops.Indeterminate)
	for _, k := range []Kind{KindSet, KindGet, KindDel} {
		c := r.Ops.ByKind[k]
		fmt.Fprintf(&b, "  %-3s ok %d, fail %d, indeterminate %d\n", k, c[0], c[1], c[2])
	}
	fmt.Fprintf(&b, "  reads: %v\n", r.Ops.Reads)
	fmt.Fprintf(&b, "\nLatency of acknowledged operations:\n")
	fmt.Fprintf(&b, "  during faults:   %s\n", r.Latency.DuringFaults)
	fmt.Fprintf(&b, "  between faults:  %s\n", r.Latency.BetweenFault)
	fmt.Fprintf(&b, "  after healing:   %s\n", r.Latency.AfterHeal)
	fmt.Fprintf(&b, "\nFaults: %d injected, at most %d replicas faulty at once (f=%d), all healed at %.3fs\n",
		len(r.Faults), r.MaxFaulty, r.F, r.HealedAt.Seconds())
	for _, f := range r.Faults {
		settled := ""
		if f.Settled > 0 {
			settled = fmt.Sprintf(", caught up %.3fs", f.Settled.Seconds())
		}
		fmt.Fprintf(&b, "  %8.3fs %-10s %-8s healed %.3fs%s%s\n", f.Start.Seconds(), f.Kind, f.Target, f.Healed.Seconds(), settled, errSuffix(f.Error))
	}
	if rc := reconfigSummary(r.Faults); len(rc) > 0 {
		fmt.Fprintf(&b, "\nReconfigurations: %d, final members %v\n", len(rc), r.Members)
		for _, l := range rc {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	if r.Interrupted != "" {
		fmt.Fprintf(&b, "\nInterrupted at %.3fs (%s): the report covers the history gathered until then\n", r.InterruptedAt.Seconds(), r.Interrupted)
	}
	fmt.Fprintf(&b, "\nConvergence: %v", r.Converged)
	if r.ConvergeError != "" {
		fmt.Fprintf(&b, " (%s)", r.ConvergeError)
	} else if r.Interrupted != "" && !r.Converged {
		b.WriteString(" (not checked: interrupted)")
	}
	b.WriteString("\n")
	for _, s := range r.ClusterState.Replicas {
		fmt.Fprintf(&b, "  %-4s view %d last_executed %d stable_checkpoint %d %s\n", s.Node, s.View, s.LastExecuted, s.StableCheckpoint, s.Fault)
	}
	fmt.Fprintf(&b, "State comparison: %s\n", r.StateCompare)
	for _, d := range r.Digests {
		fmt.Fprintf(&b, "  %-4s last_executed %d view %d digest %s%s\n", d.Replica, d.LastExecuted, d.View, d.Digest, errSuffix(d.Error))
	}
	for _, f := range r.FinalReads {
		fmt.Fprintf(&b, "  %-4s ok=%v value=%q matching replies %d/%d%s\n", f.Key, f.OK, f.Value, f.Replies, r.finalNodes(), errSuffix(f.Error))
	}
	fmt.Fprintf(&b, "\nLinearizability (porcupine, partitioned by key): %s, %d operations checked in %v\n",
		r.Linearizable.Result, r.Linearizable.Ops, r.Linearizable.Elapsed.Round(time.Millisecond))
	if r.Linearizable.Detail != "" {
		fmt.Fprintf(&b, "  %s\n", r.Linearizable.Detail)
	}
	if r.Linearizable.Visualization != "" {
		fmt.Fprintf(&b, "  visualisation: %s\n", r.Linearizable.Visualization)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	if len(r.Problems) > 0 {
		b.WriteString("\nProblems found:\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	return b.String()
}

// finalNodes is the size of the final configuration.
func (r *Report) finalNodes() int {
	if len(r.Members) > 0 {
		return len(r.Members)
	}
	return r.Nodes
}
