//go:build pbft_timeline

package topology_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/internal/topology"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/loadgen"
)

// TestLatencyTimeline breaks one client's writes down along their critical path: one
// nats-server, four cmd/replica processes and the load tool with one client over loopback
// TCP, as BenchmarkMultiProcess's n=4/clients=1, every process built with the
// pbft_timeline tag (bus/timeline.go) so that it stamps each step of each message:
//
//	GOFLAGS=-tags=pbft_timeline go test -run TestLatencyTimeline -v ./tests/topology/
//
// PBFT_BENCH_DURATION sets the load's length (default 5s); PBFT_TIMELINE_OUT names a file
// for the table as well. The table is what it measured: it fails only if nothing could be
// traced.
func TestLatencyTimeline(t *testing.T) {
	d := 5 * time.Second
	if v := os.Getenv("PBFT_BENCH_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if err := bus.StartTimeline(dir); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bins, err := topology.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"n1", "n2", "n3", "n4"}
	top, err := topology.Start(ctx, bins, topology.Options{NATSServers: 1, Replicas: ids, Cluster: "bench",
		Env: []string{"PBFT_TIMELINE_DIR=" + dir}})
	if err != nil {
		t.Fatal(err)
	}
	defer top.Close()
	s := config.Default()
	s.KeysDir, s.ClientID, s.Cluster, s.NodeIDs = top.KeysDir(), topology.GatewayID, "bench", ids
	res, err := loadgen.Run(ctx, s, loadgen.Options{Clients: 1, Duration: d, Nodes: len(ids), NATSURL: top.NATSURL(topology.GatewayID)})
	if err != nil {
		t.Fatal(err)
	}
	// The replicas write their stamps every 50 ms and the echo baseline ran after the
	// load for longer than that; this process's own are written now.
	bus.FlushTimeline()
	procs, err := readTimelines(dir)
	if err != nil {
		t.Fatal(err)
	}
	tl := traceRequests(procs, topology.GatewayID, "n1")
	if tl.traced == 0 {
		for name, p := range procs {
			t.Logf("%s: %d reads, %d deliveries", name, len(p.stage[bus.StageRead]), len(p.stage[bus.StageDeliver]))
		}
		t.Fatalf("no request could be traced (%d invocations; lost at %v)", tl.invoked, tl.lost)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "load tool: %.0f req/s, p50 %.3f ms; echo baseline %.0f req/s (%.3f ms a round trip)\n",
		res.ThroughputRPS, res.LatencyMS.P50, res.BaselineRPS, 1000/res.BaselineRPS)
	tl.write(&b)
	t.Log("\n" + b.String())
	if out := os.Getenv("PBFT_TIMELINE_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type tlEvent struct {
	t          int64
	stage      byte
	kind, peer string
}

// tlProc is one process's stamps by stage, each in time order.
type tlProc struct {
	name  string
	stage map[byte][]tlEvent
}

func readTimelines(dir string) (map[string]*tlProc, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.tl"))
	if err != nil {
		return nil, err
	}
	procs := map[string]*tlProc{}
	for _, file := range files {
		p, err := readTimeline(file)
		if err != nil {
			return nil, err
		}
		if p.name != "" {
			procs[p.name] = p
		}
	}
	return procs, nil
}

func readTimeline(file string) (*tlProc, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := &tlProc{stage: map[byte][]tlEvent{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 4 || len(fs[1]) != 1 {
			return nil, fmt.Errorf("%s: bad line %q", file, sc.Text())
		}
		ts, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		e := tlEvent{t: ts, stage: fs[1][0], kind: strings.Trim(fs[2], "-"), peer: strings.Trim(fs[3], "-")}
		if e.stage == bus.StageName && p.name == "" {
			p.name = e.peer
		}
		p.stage[e.stage] = append(p.stage[e.stage], e)
	}
	for _, evs := range p.stage {
		slices.SortStableFunc(evs, func(a, b tlEvent) int { return int(a.t - b.t) })
	}
	return p, sc.Err()
}

// latest is the last stamp of stage at or before t (and not before from) that ok takes.
func (p *tlProc) latest(stage byte, from, t int64, ok func(tlEvent) bool) (tlEvent, bool) {
	evs := p.stage[stage]
	i, _ := slices.BinarySearchFunc(evs, t+1, func(e tlEvent, t int64) int { return int(e.t - t) })
	for i--; i >= 0 && evs[i].t >= from; i-- {
		if ok == nil || ok(evs[i]) {
			return evs[i], true
		}
	}
	return tlEvent{}, false
}

// earliest is the first stamp of stage at or after t.
func (p *tlProc) earliest(stage byte, t int64) (tlEvent, bool) {
	evs := p.stage[stage]
	i, _ := slices.BinarySearchFunc(evs, t, func(e tlEvent, t int64) int { return int(e.t - t) })
	if i < len(evs) {
		return evs[i], true
	}
	return tlEvent{}, false
}

// timeline is the critical paths of the traced requests: per segment label, its
// durations (ns), and per category the per-request sums.
type timeline struct {
	invoked, traced int
	lost            map[string]int // requests not traced, by where the path was lost
	order           []string
	seg             map[string][]int64
	cat             map[string][]int64
	total           []int64
}

// Segment categories, and the goroutine hand-offs inside a segment of each label.
const (
	catBus     = "bus (socket write to socket read: kernel, nats-server)"
	catHandoff = "goroutine hand-offs in a process"
	catWork    = "work on the node loop / request goroutine"
)

// traceRequests follows each request of client back from the moment its goroutine
// woke: the reply that completed its quorum, the message whose step made that reply,
// and so on to the request's publish. The first 100 requests (connections warming)
// and any whose path leaves the request's window are left out.
func traceRequests(procs map[string]*tlProc, client, primary string) *timeline {
	tl := &timeline{seg: map[string][]int64{}, cat: map[string][]int64{}, lost: map[string]int{}}
	c := procs[client]
	if c == nil {
		return tl
	}
	role := func(name string) string {
		switch name {
		case client:
			return "client"
		case primary:
			return "primary"
		}
		return "backup"
	}
	for i, a := range c.stage[bus.StageInvoke] {
		tl.invoked++
		k, ok := c.earliest(bus.StageWoken, a.t)
		if i < 100 || !ok {
			continue
		}
		type seg struct {
			label, cat string
			d          int64
		}
		var segs []seg
		add := func(label, cat string, d int64) { segs = append(segs, seg{label, cat, d}) }
		d, ok := c.latest(bus.StageDeliver, a.t, k.t, func(e tlEvent) bool { return e.kind == "reply" || e.kind == "replies" })
		if !ok {
			tl.lost["reply"]++
			continue
		}
		add("client: reply callback -> request goroutine woken [1 hand-off]", catHandoff, k.t-d.t)
		q, done := c, false
		for range 16 {
			r, ok := q.latest(bus.StageRead, a.t, d.t, nil)
			p := procs[d.peer]
			if !ok || p == nil {
				tl.lost["read or sender"]++
				break
			}
			add(role(q.name)+": socket read -> "+d.kind+" callback [1 hand-off: nats.go reader -> subscription]", catHandoff, d.t-r.t)
			pub, ok := p.latest(bus.StagePublish, a.t, r.t, func(e tlEvent) bool {
				return e.kind == d.kind && (e.peer == "" || e.peer == q.name)
			})
			if !ok {
				tl.lost["publish"]++
				break
			}
			w, ok := p.earliest(bus.StageWrite, pub.t)
			if !ok || w.t > r.t {
				tl.lost["write"]++
				break
			}
			add("bus "+d.kind+": "+role(p.name)+" -> "+role(q.name), catBus, r.t-w.t)
			add(role(p.name)+": publish "+d.kind+" -> socket write [1 hand-off: nats.go flusher]", catHandoff, w.t-pub.t)
			if p == c {
				add("client: invoke -> publish request", catWork, pub.t-a.t)
				done = true
				break
			}
			s, ok := p.latest(bus.StageStepped, a.t, pub.t, nil)
			if !ok {
				tl.lost["step"]++
				break
			}
			add(role(p.name)+": "+s.kind+" stepped -> "+d.kind+" published", catWork, pub.t-s.t)
			h, ok := p.latest(bus.StageHandle, a.t, s.t, nil)
			if !ok {
				tl.lost["handle"]++
				break
			}
			add(role(p.name)+": node loop has "+h.kind+" -> stepped", catWork, s.t-h.t)
			d2, ok := p.latest(bus.StageDeliver, a.t, h.t, func(e tlEvent) bool { return e.kind == h.kind && e.peer == h.peer })
			if !ok {
				tl.lost["callback"]++
				break
			}
			add(role(p.name)+": "+h.kind+" callback -> node loop [1 hand-off: bus handler -> node goroutine]", catHandoff, h.t-d2.t)
			q, d = p, d2
		}
		if !done {
			continue
		}
		tl.traced++
		tl.total = append(tl.total, k.t-a.t)
		sums := map[string]int64{catBus: 0, catHandoff: 0, catWork: 0}
		seen := map[string]bool{}
		for j := len(segs) - 1; j >= 0; j-- {
			sg := segs[j]
			if _, ok := tl.seg[sg.label]; !ok {
				tl.order = append(tl.order, sg.label)
			}
			// A label met twice on one path (none expected) counts once, summed.
			if seen[sg.label] {
				last := tl.seg[sg.label]
				last[len(last)-1] += sg.d
			} else {
				tl.seg[sg.label] = append(tl.seg[sg.label], sg.d)
			}
			seen[sg.label] = true
			sums[sg.cat] += sg.d
		}
		for cat, v := range sums {
			tl.cat[cat] = append(tl.cat[cat], v)
		}
	}
	return tl
}

// pct is the p-th percentile of v in microseconds.
func pct(v []int64, p int) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return float64(s[min(len(s)*p/100, len(s)-1)]) / 1000
}

func (tl *timeline) write(b *strings.Builder) {
	fmt.Fprintf(b, "%d requests traced of %d invoked (the first 100 left out); paths lost at: %v\n", tl.traced, tl.invoked, tl.lost)
	fmt.Fprintf(b, "%-92s %6s %8s %8s\n", "critical path, in order (us)", "on", "p50", "p90")
	for _, l := range tl.order {
		v := tl.seg[l]
		fmt.Fprintf(b, "%-92s %6d %8.1f %8.1f\n", l, len(v), pct(v, 50), pct(v, 90))
	}
	fmt.Fprintf(b, "%-92s %6d %8.1f %8.1f\n", "total: invoke -> request goroutine woken", len(tl.total), pct(tl.total, 50), pct(tl.total, 90))
	for _, cat := range []string{catBus, catHandoff, catWork} {
		fmt.Fprintf(b, "%-92s %6d %8.1f %8.1f\n", "sum of "+cat, len(tl.cat[cat]), pct(tl.cat[cat], 50), pct(tl.cat[cat], 90))
	}
}
