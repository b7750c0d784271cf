package campaign

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// judge passes a clean run, fails one with a problem, and in byzantine mode inverts:
// a problem found passes, nothing found fails. Write stores what Text shows.
func TestJudgeAndWrite(t *testing.T) {
	clean := func() *Report {
		return &Report{Seed: 9, Mode: "faults", Nodes: 4, F: 1, Clients: 8, Keys: 1, Duration: time.Minute, NATSServers: 3,
			FaultKinds: []FaultKind{FaultKill, FaultCut}, Converged: true, Ops: Counts{Total: 10, OK: 10},
			FinalReads:   []FinalRead{{Key: "k0", OK: true, Value: "v", Replies: 4}},
			Linearizable: Linearizability{Result: "Ok", Ops: 10},
			Faults:       []FaultEvent{{Kind: FaultKill, Target: "replica-1", Start: time.Second, Healed: 2 * time.Second}}}
	}
	r := clean()
	judge(r, Config{Nodes: 4})
	if r.Verdict != "pass" || len(r.Problems) != 0 {
		t.Fatalf("clean run: %s %v", r.Verdict, r.Problems)
	}
	if want := "go run ./cmd/campaign -seed 9 -duration 1m0s -clients 8 -keys 1 -nodes 4 -nats 3 -faults kill,cut"; r.Rerun() != want {
		t.Fatalf("rerun %q, want %q", r.Rerun(), want)
	}
	r = clean()
	r.FinalReads[0].Replies = 3
	judge(r, Config{Nodes: 4})
	if r.Verdict != "fail" || !strings.Contains(r.Why, "only 3 of 4") {
		t.Fatalf("disagreeing replicas: %s %q", r.Verdict, r.Why)
	}
	r = clean()
	judge(r, Config{Nodes: 4, Byzantine: true})
	if r.Verdict != "fail" {
		t.Fatalf("byzantine run with nothing found: %s", r.Verdict)
	}
	r = clean()
	r.Linearizable.Result = "Illegal"
	judge(r, Config{Nodes: 4, Byzantine: true})
	if r.Verdict != "pass" {
		t.Fatalf("byzantine run, not linearizable: %s", r.Verdict)
	}

	dir := t.TempDir()
	r = clean()
	r.NATSAuth = true
	judge(r, Config{Nodes: 4})
	if err := r.Write(dir, []Op{{Kind: KindGet, Key: "k0", Status: StatusOK}}); err != nil {
		t.Fatal(err)
	}
	var back Report
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil || back.Verdict != "pass" || back.Seed != 9 || len(back.Faults) != 1 || !back.NATSAuth {
		t.Fatalf("report.json: %v %+v", err, back)
	}
	txt, err := os.ReadFile(filepath.Join(dir, "report.txt"))
	if err != nil || !strings.Contains(string(txt), "PBFT fault campaign: PASS") || !strings.Contains(string(txt), "kill       replica-1") ||
		!strings.Contains(string(txt), "NATS auth on (deploy/k8s/nats/auth.conf)") {
		t.Fatalf("report.txt: %v\n%s", err, txt)
	}
	var hist []Op
	if b, err := os.ReadFile(filepath.Join(dir, "history.json")); err != nil || json.Unmarshal(b, &hist) != nil || len(hist) != 1 {
		t.Fatalf("history.json: %v %v", err, hist)
	}
}

func TestCompareDigests(t *testing.T) {
	same := []ReplicaDigest{{Replica: "a", LastExecuted: 5, Digest: "ab12"}, {Replica: "b", LastExecuted: 5, Digest: "ab12"}}
	if ok, how := compareDigests(same); !ok || !strings.Contains(how, "all 2 replicas") {
		t.Fatalf("equal digests: %v %q", ok, how)
	}
	diff := append(same[:1:1], ReplicaDigest{Replica: "b", LastExecuted: 5, Digest: "ff00"})
	if ok, how := compareDigests(diff); ok || !strings.Contains(how, "[a]") || !strings.Contains(how, "[b]") {
		t.Fatalf("different digests: %v %q", ok, how)
	}
	missing := append(same[:1:1], ReplicaDigest{Replica: "b", Error: "timed out"})
	if ok, how := compareDigests(missing); ok || !strings.Contains(how, "timed out") {
		t.Fatalf("missing digest: %v %q", ok, how)
	}
	r := &Report{Converged: true, Ops: Counts{OK: 1}, Linearizable: Linearizability{Result: "Ok"}, Digests: diff}
	judge(r, Config{Nodes: 2})
	if r.Verdict != "fail" || !strings.Contains(r.Why, "digests differ") {
		t.Fatalf("judge with different digests: %s %q", r.Verdict, r.Why)
	}
}

// An interrupted run is judged by its history only: "interrupted" when what it gathered
// is linearizable (whatever convergence says), "fail" when it is not; in byzantine mode
// a history caught not linearizable still passes. The text says it was interrupted.
func TestJudgeInterrupted(t *testing.T) {
	interrupted := func() *Report {
		return &Report{Mode: "faults", Nodes: 4, F: 1, Duration: time.Minute, Ops: Counts{Total: 10, OK: 10},
			Interrupted: "interrupt signal received", InterruptedAt: 12 * time.Second,
			ConvergeError: "context canceled", Linearizable: Linearizability{Result: "Ok", Ops: 10}}
	}
	r := interrupted()
	judge(r, Config{Nodes: 4})
	if r.Verdict != VerdictInterrupted || len(r.Problems) != 0 || !strings.Contains(r.Why, "interrupt signal received") {
		t.Fatalf("interrupted, linearizable: %s %q %v", r.Verdict, r.Why, r.Problems)
	}
	if txt := r.Text(); !strings.Contains(txt, "PBFT fault campaign: INTERRUPTED") || !strings.Contains(txt, "Interrupted at 12.000s") {
		t.Fatalf("text:\n%s", txt)
	}
	r = interrupted()
	r.Linearizable.Result = "Illegal"
	judge(r, Config{Nodes: 4})
	if r.Verdict != "fail" || !strings.Contains(r.Why, "not linearizable") {
		t.Fatalf("interrupted, not linearizable: %s %q", r.Verdict, r.Why)
	}
	r = interrupted()
	r.Linearizable.Result = "Illegal"
	judge(r, Config{Nodes: 4, Byzantine: true})
	if r.Verdict != "pass" {
		t.Fatalf("interrupted byzantine run, caught: %s %q", r.Verdict, r.Why)
	}
	r = interrupted()
	judge(r, Config{Nodes: 4, Byzantine: true})
	if r.Verdict != VerdictInterrupted {
		t.Fatalf("interrupted byzantine run, nothing caught yet: %s %q", r.Verdict, r.Why)
	}
}
