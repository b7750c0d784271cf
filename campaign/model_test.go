package campaign

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestLinearizableHistoryIsOk(t *testing.T) {
	ops := []Op{
		{Process: 0, Kind: KindSet, Key: "k0", Value: "a", Status: StatusOK, Invoke: ms(0), Complete: ms(10)},
		{Process: 1, Kind: KindGet, Key: "k0", Value: "a", Status: StatusOK, Invoke: ms(11), Complete: ms(20)},
		// Concurrent with the delete: may read either.
		{Process: 0, Kind: KindDel, Key: "k0", Status: StatusOK, Invoke: ms(21), Complete: ms(40)},
		{Process: 1, Kind: KindGet, Key: "k0", Value: "a", Status: StatusOK, Invoke: ms(22), Complete: ms(30)},
		{Process: 1, Kind: KindGet, Key: "k0", Value: "", Status: StatusOK, Invoke: ms(41), Complete: ms(50)},
		// Another key, untouched: reads as absent.
		{Process: 2, Kind: KindGet, Key: "k1", Value: "", Status: StatusOK, Invoke: ms(0), Complete: ms(5)},
	}
	dir := t.TempDir()
	l := CheckLinearizable(ops, 10*time.Second, dir)
	if l.Result != "Ok" || l.Ops != len(ops) {
		t.Fatalf("got %+v, want Ok over %d operations", l, len(ops))
	}
	if l.Visualization != "" {
		t.Fatalf("visualisation written for an Ok history: %s", l.Visualization)
	}
}

// A read that returns a value that was overwritten before it began is a stale read;
// an acknowledged write that a later read does not see is a lost write. Both are
// caught, and porcupine's visualisation is written.
func TestStaleReadAndLostWriteAreIllegal(t *testing.T) {
	cases := map[string][]Op{
		"stale read": {
			{Process: 0, Kind: KindSet, Key: "k0", Value: "a", Status: StatusOK, Invoke: ms(0), Complete: ms(10)},
			{Process: 0, Kind: KindSet, Key: "k0", Value: "b", Status: StatusOK, Invoke: ms(11), Complete: ms(20)},
			{Process: 1, Kind: KindGet, Key: "k0", Value: "a", Status: StatusOK, Invoke: ms(21), Complete: ms(30)},
		},
		"lost acknowledged write": {
			{Process: 0, Kind: KindSet, Key: "k3", Value: "a", Status: StatusOK, Invoke: ms(0), Complete: ms(10)},
			{Process: 1, Kind: KindGet, Key: "k3", Value: "", Status: StatusOK, Invoke: ms(20), Complete: ms(30), Final: true},
		},
		"value nobody wrote": {
			{Process: 1, Kind: KindGet, Key: "k0", Value: "forged", Status: StatusOK, Invoke: ms(0), Complete: ms(5)},
		},
	}
	for name, ops := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := CheckLinearizable(ops, 10*time.Second, dir)
			if l.Result != "Illegal" {
				t.Fatalf("got %+v, want Illegal", l)
			}
			if l.Visualization != filepath.Join(dir, "linearizability.html") {
				t.Fatalf("visualisation at %q", l.Visualization)
			}
			if fi, err := os.Stat(l.Visualization); err != nil || fi.Size() == 0 {
				t.Fatalf("visualisation: %v", err)
			}
			if l.Detail == "" {
				t.Fatal("no detail on the failing key")
			}
		})
	}
}

// An indeterminate write may take effect at any time after its invocation, even after
// everything else; a definite failure never does; an indeterminate read is ignored.
func TestIndeterminateAndFailedOperations(t *testing.T) {
	base := []Op{
		{Process: 0, Kind: KindSet, Key: "k0", Value: "a", Status: StatusOK, Invoke: ms(0), Complete: ms(10)},
		{Process: 1, Kind: KindSet, Key: "k0", Value: "late", Status: StatusInfo, Invoke: ms(5), Complete: ms(15)},
		{Process: 0, Kind: KindGet, Key: "k0", Value: "a", Status: StatusOK, Invoke: ms(20), Complete: ms(30)},
		{Process: 0, Kind: KindGet, Key: "k0", Value: "late", Status: StatusOK, Invoke: ms(100), Complete: ms(110)},
		{Process: 2, Kind: KindGet, Key: "k0", Status: StatusInfo, Invoke: ms(0), Complete: ms(200)},
	}
	if l := CheckLinearizable(base, 10*time.Second, ""); l.Result != "Ok" || l.Ops != 4 {
		t.Fatalf("indeterminate write seen late: %+v, want Ok over 4 operations", l)
	}
	failed := append([]Op(nil), base...)
	failed[1].Status = StatusFail // a 4xx: it never happened, so "late" cannot be read
	if l := CheckLinearizable(failed, 10*time.Second, ""); l.Result != "Illegal" {
		t.Fatalf("failed write seen: %+v, want Illegal", l)
	}
}

func TestCountsAndLatencySplit(t *testing.T) {
	ops := []Op{
		{Kind: KindSet, Status: StatusOK, Invoke: ms(0), Complete: ms(10)},
		{Kind: KindGet, Status: StatusOK, Invoke: ms(100), Complete: ms(300)},
		{Kind: KindGet, Status: StatusInfo, Invoke: ms(100), Complete: ms(5000)},
		{Kind: KindDel, Status: StatusFail, Invoke: ms(0), Complete: ms(1)},
		{Kind: KindSet, Status: StatusOK, Invoke: ms(1000), Complete: ms(1004)},
	}
	c := CountOps(ops)
	if c.Total != 5 || c.OK != 3 || c.Fail != 1 || c.Indeterminate != 1 || c.ByKind[KindGet] != [3]int{1, 0, 1} {
		t.Fatalf("counts %+v", c)
	}
	faults := []FaultEvent{{Start: ms(50), Healed: ms(150), Settled: ms(400)}}
	l := splitLatencies(ops, faults, ms(900))
	if l.DuringFaults.N != 1 || l.DuringFaults.P50 != ms(200) || l.BetweenFault.N != 1 || l.BetweenFault.P99 != ms(10) ||
		l.AfterHeal.N != 1 || l.AfterHeal.Max != ms(4) {
		t.Fatalf("latencies %+v", l)
	}
}

func TestConvergedIgnoresViewsButNotesThem(t *testing.T) {
	st := ClusterState{Replicas: []ReplicaState{
		{Node: "a", View: 1, LastExecuted: 9}, {Node: "b", View: 1, LastExecuted: 9},
		{Node: "c", View: 1, LastExecuted: 9}, {Node: "d", View: 2, LastExecuted: 9},
	}}
	if !converged(st) {
		t.Fatal("same progress, different views: not converged")
	}
	if n := viewNote(st); !strings.Contains(n, "d in view 2") || !strings.Contains(n, "3 replicas are in view 1") {
		t.Fatalf("note %q", n)
	}
	st.Replicas[3].View = 1
	if n := viewNote(st); n != "" {
		t.Fatalf("note %q for equal views", n)
	}
	st.Replicas[2].LastExecuted = 8
	if converged(st) {
		t.Fatal("different progress: converged")
	}
	st.Replicas[2].LastExecuted, st.Replicas[1].Fault = 9, "unreachable"
	if converged(st) {
		t.Fatal("unreachable replica: converged")
	}
}
