package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/config"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := ParseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Clients: DefaultClients, Duration: DefaultDuration, Size: DefaultSize, Nodes: DefaultNodes}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("defaults = %+v, want %+v", o, want)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := ParseFlags([]string{"-clients", "64", "-duration", "3s", "-size=1024", "-nodes", "7", "-json", "-read-ratio", "0.25", "-cpuprofile", "cpu.pb.gz", "-memprofile", "mem.pb.gz", "-trace", "run.trace"})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Clients: 64, Duration: 3 * time.Second, Size: 1024, Nodes: 7, JSON: true, ReadRatio: 0.25, CPUProfile: "cpu.pb.gz", MemProfile: "mem.pb.gz", Trace: "run.trace"}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got %+v, want %+v", o, want)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-clients", "0"},
		{"-clients", "-3"},
		{"-clients", "x"},
		{"-duration", "0s"},
		{"-duration", "-1s"},
		{"-duration", "10"},
		{"-size", "-1"},
		{"-size", "100000000"},
		{"-nodes", "0"},
		{"-read-ratio", "-0.1"},
		{"-read-ratio", "1.5"},
		{"-read-ratio", "NaN"},
		{"-read-ratio", "x"},
		{"-bogus"},
		{"extra"},
		{"-json", "extra"},
	} {
		if o, err := ParseFlags(args); err == nil {
			t.Errorf("ParseFlags(%q) = %+v, want an error", args, o)
		}
	}
	if _, err := ParseFlags([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v, want flag.ErrHelp", err)
	}
	var b bytes.Buffer
	Usage(&b)
	for _, f := range []string{"-clients", "-duration", "-size", "-nodes", "-json", "-read-ratio", "-cpuprofile", "-memprofile"} {
		if !strings.Contains(b.String(), f) {
			t.Errorf("usage lacks %s:\n%s", f, b.String())
		}
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	if _, err := Run(context.Background(), config.Default(), Options{Clients: 0, Duration: time.Second, Nodes: 4}); err == nil {
		t.Fatal("Run with 0 clients: no error")
	}
}

func TestPercentiles(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(lat)
	if p != (Latencies{P50: 50, P90: 90, P99: 99, Max: 100}) {
		t.Fatalf("percentiles = %+v", p)
	}
	if p := percentiles(nil); p != (Latencies{}) {
		t.Fatalf("percentiles(nil) = %+v", p)
	}
}

func TestIsRead(t *testing.T) {
	for _, tc := range []struct {
		ratio float64
		want  string // of operations 1..8, r for a read
	}{
		{0, "wwwwwwww"},
		{1, "rrrrrrrr"},
		{0.5, "wrwrwrwr"},
		{0.25, "wwwrwwwr"},
		{0.75, "wrrrwrrr"},
	} {
		var got strings.Builder
		for k := uint64(1); k <= 8; k++ {
			if isRead(k, tc.ratio) {
				got.WriteByte('r')
			} else {
				got.WriteByte('w')
			}
		}
		if got.String() != tc.want {
			t.Errorf("ratio %v: %s, want %s", tc.ratio, got.String(), tc.want)
		}
	}
}

// TestRunReads mixes reads into the load: they take the read-only path, return the
// value the run wrote, and are reported apart from the writes.
func TestRunReads(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster for a few seconds")
	}
	profile, memProfile := filepath.Join(t.TempDir(), "cpu.pb.gz"), filepath.Join(t.TempDir(), "mem.pb.gz")
	traceFile := filepath.Join(t.TempDir(), "run.trace")
	o := Options{Clients: 2, Duration: time.Second, Nodes: 4, Size: 8, ReadRatio: 0.5, CPUProfile: profile, MemProfile: memProfile, Trace: traceFile}
	r, err := Run(context.Background(), config.Default(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	writes := r.Requests - r.Reads
	if r.Errors != 0 || r.Reads == 0 || writes == 0 {
		t.Fatalf("errors %d, reads %d, writes %d: want no errors, both kinds", r.Errors, r.Reads, writes)
	}
	// Each client alternates, so reads and writes differ by at most one per client.
	if d := r.Reads - writes; d < -o.Clients || d > o.Clients {
		t.Errorf("reads %d, writes %d: not half of each", r.Reads, writes)
	}
	if r.ReadFallbacks > r.Reads {
		t.Errorf("%d fallbacks of %d reads", r.ReadFallbacks, r.Reads)
	}
	for name, l := range map[string]Latencies{"read": r.ReadLatencyMS, "write": r.WriteLatencyMS} {
		if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max && l.Max <= r.LatencyMS.Max) {
			t.Errorf("%s latencies: %+v (all: %+v)", name, l, r.LatencyMS)
		}
	}
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("-cpuprofile: %v, %v", fi, err)
	}
	if fi, err := os.Stat(memProfile); err != nil || fi.Size() == 0 {
		t.Errorf("-memprofile: %v, %v", fi, err)
	}
	if fi, err := os.Stat(traceFile); err != nil || fi.Size() == 0 {
		t.Errorf("-trace: %v, %v", fi, err)
	}
	// Every request went through the send queue (reads to every replica, writes to the
	// primary), so the sends carried at least as many requests as succeeded, never more
	// than they are; and the run used some CPU.
	if r.Sends == 0 || r.SentRequests < uint64(r.Requests) || r.SentRequests < r.Sends {
		t.Errorf("sends %d carrying %d requests, for %d requests", r.Sends, r.SentRequests, r.Requests)
	}
	if runtime.GOOS != "windows" && (r.CPUSeconds <= 0 || r.BaselineCPUSeconds <= 0) {
		t.Errorf("cpu_seconds %v, baseline_cpu_seconds %v", r.CPUSeconds, r.BaselineCPUSeconds)
	}
	if r.BaselineRequests <= 0 || r.BaselineRPS <= 0 {
		t.Errorf("baseline: %d requests, %v req/s", r.BaselineRequests, r.BaselineRPS)
	}
	var text bytes.Buffer
	r.WriteText(&text)
	if !strings.Contains(text.String(), "fell back to ordering") {
		t.Errorf("summary lacks the reads:\n%s", text.String())
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["reads"] != float64(r.Reads) || m["read_fallbacks"] != float64(r.ReadFallbacks) || m["read_ratio"] != 0.5 {
		t.Errorf("JSON reads: %s", js.String())
	}
	if m["sends"] != float64(r.Sends) || m["sent_requests"] != float64(r.SentRequests) || m["cpu_seconds"] == nil {
		t.Errorf("JSON sends, cpu_seconds: %s", js.String())
	}
	for _, k := range []string{"read_latency_ms", "write_latency_ms"} {
		if l, ok := m[k].(map[string]any); !ok || l["p50"] == nil {
			t.Errorf("JSON lacks %s: %s", k, js.String())
		}
	}
}

func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster for a few seconds")
	}
	var progress bytes.Buffer
	o := Options{Clients: 4, Duration: time.Second, Nodes: 4, Size: 16, Progress: &progress}
	r, err := Run(context.Background(), config.Default(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.Requests <= 0 || r.ThroughputRPS <= 0 || r.BaselineRPS <= 0 {
		t.Errorf("requests %d, throughput %v, baseline %v: want all > 0", r.Requests, r.ThroughputRPS, r.BaselineRPS)
	}
	if r.ViewChanges != 0 || r.Errors != 0 {
		t.Errorf("view changes %d, errors %d: want 0", r.ViewChanges, r.Errors)
	}
	l := r.LatencyMS
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("latencies not ordered: %+v", l)
	}
	if r.Nodes != 4 || r.Clients != 4 || r.Size != 16 {
		t.Errorf("nodes/clients/size = %d/%d/%d", r.Nodes, r.Clients, r.Size)
	}
	if !strings.Contains(progress.String(), "req/s") {
		t.Errorf("no progress line in %q", progress.String())
	}

	var text bytes.Buffer
	r.WriteText(&text)
	if !strings.Contains(text.String(), "replication costs") {
		t.Errorf("summary lacks the ratio:\n%s", text.String())
	}

	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"throughput_rps", "view_changes", "baseline_rps", "requests", "errors"} {
		if _, ok := m[k].(float64); !ok {
			t.Errorf("JSON lacks number %q: %s", k, js.String())
		}
	}
	lm, ok := m["latency_ms"].(map[string]any)
	if !ok {
		t.Fatalf("JSON lacks object latency_ms: %s", js.String())
	}
	for _, k := range []string{"p50", "p90", "p99", "max"} {
		if _, ok := lm[k].(float64); !ok {
			t.Errorf("latency_ms lacks number %q: %s", k, js.String())
		}
	}
	if len(lm) != 4 {
		t.Errorf("latency_ms has keys beyond p50/p90/p99/max: %s", js.String())
	}
}

func TestRunBadProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	o := Options{Clients: 1, Duration: time.Second, Nodes: 4, CPUProfile: filepath.Join(t.TempDir(), "no", "such", "dir", "cpu")}
	if _, err := Run(context.Background(), config.Default(), o); err == nil || !strings.Contains(err.Error(), "-cpuprofile") {
		t.Fatalf("err = %v, want a -cpuprofile error", err)
	}
	o.CPUProfile, o.MemProfile = "", filepath.Join(t.TempDir(), "no", "such", "dir", "mem")
	if _, err := Run(context.Background(), config.Default(), o); err == nil || !strings.Contains(err.Error(), "-memprofile") {
		t.Fatalf("err = %v, want a -memprofile error", err)
	}
}

func TestRunCancelled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, config.Default(), Options{Clients: 2, Duration: time.Minute, Nodes: 4})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("cancelled run took %v", d)
	}
}
