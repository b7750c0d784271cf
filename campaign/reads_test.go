package campaign

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// readPathGateway is a gateway's key-value facade in one process: linearizable (one
// lock), its reads answered on the path asked for, except that every third read sent
// without ?ordered falls back to ordering. It counts what it answered on each path.
type readPathGateway struct {
	mu                          sync.Mutex
	kv                          map[string]string
	seq                         uint64
	readOnlyAsked               int
	readOnly, fallback, ordered int
}

func (g *readPathGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.URL.Path == "/v1/messages" { // pbft_cluster: converged
		_, _ = w.Write([]byte(`{"view":0,"primary":"r0","replicas":[{"node":"r0","last_executed":1},{"node":"r1","last_executed":1}]}`))
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
	g.seq++
	w.Header().Set("X-PBFT-Seq", strconv.FormatUint(g.seq, 10))
	w.Header().Set("X-PBFT-Replies", "4")
	switch r.Method {
	case http.MethodPut:
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		g.kv[key] = string(b)
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodDelete:
		delete(g.kv, key)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	ordered := r.URL.Query().Get("ordered") == "true"
	switch {
	case ordered:
		g.ordered++
	default:
		g.readOnlyAsked++
		if ordered = g.readOnlyAsked%3 == 0; ordered {
			g.fallback++
		} else {
			g.readOnly++
		}
	}
	w.Header().Set("X-PBFT-Ordered", strconv.FormatBool(ordered))
	v, ok := g.kv[key]
	if !ok {
		http.Error(w, "not set", http.StatusNotFound)
		return
	}
	_, _ = w.Write([]byte(v))
}

// A run's report counts the reads by path exactly as the gateway answered them: the
// clients send about half with ?ordered=true, the rest on the read-only path, and a
// read-only read the gateway ordered (X-PBFT-Ordered: true) is a fallback.
func TestRunCountsReadPaths(t *testing.T) {
	g := &readPathGateway{kv: map[string]string{}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	out := t.TempDir()
	rep, err := Run(context.Background(), Config{Duration: 500 * time.Millisecond, Seed: 3, Nodes: 4, Out: out,
		Workload: Workload{Clients: 4, Keys: 2}}, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != "pass" {
		t.Fatalf("verdict %s: %s", rep.Verdict, rep.Why)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	r := rep.Ops.Reads
	// The read that waited for the cluster to serve (on the read-only path) is not part
	// of the history.
	if r.ReadOnly != g.readOnly-1 || r.Fallback != g.fallback || r.Ordered != g.ordered {
		t.Fatalf("reads %+v; the gateway answered %d read-only (one before the history), %d fallbacks, %d ordered",
			r, g.readOnly, g.fallback, g.ordered)
	}
	if r.SentReadOnly != r.ReadOnly+r.Fallback || r.SentOrdered != r.Ordered {
		t.Fatalf("reads %+v: every read was answered", r)
	}
	gets := rep.Ops.ByKind[KindGet]
	if r.SentReadOnly+r.SentOrdered != gets[0]+gets[1]+gets[2] {
		t.Fatalf("reads %+v, gets %v: every get is counted once", r, gets)
	}
	if r.Fallback == 0 || r.SentOrdered < r.SentReadOnly/2 || r.SentReadOnly < r.SentOrdered/2 {
		t.Fatalf("reads %+v: want both paths about half each, and fallbacks", r)
	}
	txt, err := os.ReadFile(filepath.Join(out, "report.txt"))
	if err != nil || !strings.Contains(string(txt), "reads: "+r.String()) {
		t.Fatalf("report.txt (%v) does not show %q:\n%s", err, r.String(), txt)
	}
	var back Report
	if b, err := os.ReadFile(filepath.Join(out, "report.json")); err != nil || json.Unmarshal(b, &back) != nil || back.Ops.Reads != r {
		t.Fatalf("report.json: %v, reads %+v, want %+v", err, back.Ops.Reads, r)
	}
}

// Unanswered reads count on the path they were sent on; writes are not reads.
func TestCountReadPaths(t *testing.T) {
	ops := []Op{
		{Kind: KindGet, Status: StatusOK},
		{Kind: KindGet, Status: StatusOK, Ordered: true},
		{Kind: KindGet, Status: StatusInfo},
		{Kind: KindGet, Status: StatusOK, OrderedAsked: true, Ordered: true},
		{Kind: KindGet, Status: StatusInfo, OrderedAsked: true},
		{Kind: KindGet, Status: StatusOK, Final: true},
		{Kind: KindSet, Status: StatusOK},
	}
	want := ReadPaths{SentReadOnly: 4, ReadOnly: 2, Fallback: 1, SentOrdered: 2, Ordered: 1}
	got := CountOps(ops).Reads
	if got != want {
		t.Fatalf("reads %+v, want %+v", got, want)
	}
	if s := got.String(); s != "4 read-only (2 answered there, 1 fell back to ordering, 1 unanswered), 2 ordered (1 answered, 1 unanswered)" {
		t.Fatalf("text %q", s)
	}
}
