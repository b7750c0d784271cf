package topology_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pbft-nats/pbft/bus"
)

// The analysis of TestLatencyTimeline's stamps (latency_timeline_test.go, built only
// with the pbft_timeline tag); here so that it is built and tested with every test run.

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
	offOrder        []string
	off             map[string][]int64 // durations off the critical path, for comparison
}

// Segment categories, and the goroutine hand-offs inside a segment of each label.
const (
	catBus     = "bus (socket write to socket read: kernel, nats-server)"
	catHandoff = "goroutine hand-offs in a process"
	catWork    = "work on the node loop / request goroutine"
)

// traceRequests follows each request of client back from the moment its goroutine
// woke: the reply that completed its quorum, the message whose step made that reply,
// and so on to the request's publish. The first skip requests (connections warming)
// and any whose path leaves the request's window are left out.
func traceRequests(procs map[string]*tlProc, client, primary string, skip int) *timeline {
	tl := &timeline{seg: map[string][]int64{}, cat: map[string][]int64{}, lost: map[string]int{}, off: map[string][]int64{}}
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
		if i < skip || !ok {
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
		// Off the path, for comparison: the first reply's hand-off into its callback,
		// and how long after it the deciding reply came.
		if d1, ok := c.earliest(bus.StageDeliver, a.t); ok && d1.t <= d.t {
			if r1, ok := c.latest(bus.StageRead, a.t, d1.t, nil); ok {
				tl.extra("off path: client: socket read -> first callback after the request", d1.t-r1.t)
				tl.extra("off path: client: first callback -> deciding reply's callback", d.t-d1.t)
			}
		}
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

// extra records a duration that is not on the critical path.
func (tl *timeline) extra(label string, d int64) {
	if _, ok := tl.off[label]; !ok {
		tl.offOrder = append(tl.offOrder, label)
	}
	tl.off[label] = append(tl.off[label], d)
}

// pct is the p-th percentile of v in microseconds.
func pct(v []int64, p int) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return float64(s[min(len(s)*p/100, len(s)-1)]) / 1000
}

func (tl *timeline) write(b *strings.Builder) {
	fmt.Fprintf(b, "%d requests traced of %d invoked (the first ones left out); paths lost at: %v\n", tl.traced, tl.invoked, tl.lost)
	fmt.Fprintf(b, "%-92s %6s %8s %8s\n", "critical path, in order (us)", "on", "p50", "p90")
	for _, l := range tl.order {
		v := tl.seg[l]
		fmt.Fprintf(b, "%-92s %6d %8.1f %8.1f\n", l, len(v), pct(v, 50), pct(v, 90))
	}
	fmt.Fprintf(b, "%-92s %6d %8.1f %8.1f\n", "total: invoke -> request goroutine woken", len(tl.total), pct(tl.total, 50), pct(tl.total, 90))
	for _, cat := range []string{catBus, catHandoff, catWork} {
		fmt.Fprintf(b, "%-92s %6d %8.1f %8.1f\n", "sum of "+cat, len(tl.cat[cat]), pct(tl.cat[cat], 50), pct(tl.cat[cat], 90))
	}
	for _, l := range tl.offOrder {
		v := tl.off[l]
		fmt.Fprintf(b, "%-92s %6d %8.1f %8.1f\n", l, len(v), pct(v, 50), pct(v, 90))
	}
}

// TestTraceRequestsFollowsTheCriticalPath checks the analysis on one request written by
// hand: a request to the primary, a pre-prepare to n2, n2's prepare to n3, n3's commit
// to n4, n4's reply to the client, and a reply from n2 that decides nothing.
func TestTraceRequestsFollowsTheCriticalPath(t *testing.T) {
	files := map[string]string{
		"client": `1 I - gw
1000 A - c0
1005 P request n1
1010 W - -
1500 R - -
1505 D reply n2
1600 R - -
1610 D reply n4
1620 K - c0
`,
		"n1": `1 I - n1
1100 R - -
1110 D request gw
1112 H request gw
1120 S request gw
1130 P preprepare -
1135 W - -
`,
		"n2": `1 I - n2
1200 R - -
1210 D preprepare n1
1212 H preprepare n1
1220 S preprepare n1
1224 P prepare -
1226 W - -
1400 P reply gw
1402 W - -
`,
		"n3": `1 I - n3
1300 R - -
1305 D prepare n2
1307 H prepare n2
1309 S prepare n2
1311 P commit -
1313 W - -
`,
		"n4": `1 I - n4
1400 R - -
1405 D commit n3
1407 H commit n3
1409 S commit n3
1411 P reply gw
1413 W - -
`,
	}
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name+".tl"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	procs, err := readTimelines(dir)
	if err != nil {
		t.Fatal(err)
	}
	tl := traceRequests(procs, "gw", "n1", 0)
	if tl.traced != 1 || tl.invoked != 1 {
		t.Fatalf("traced %d of %d requests (lost at %v), want 1 of 1", tl.traced, tl.invoked, tl.lost)
	}
	want := map[string]int64{
		"client: invoke -> publish request":                                                       5,
		"bus request: client -> primary":                                                          90,
		"primary: request stepped -> preprepare published":                                        10,
		"bus preprepare: primary -> backup":                                                       65,
		"bus prepare: backup -> backup":                                                           74,
		"backup: node loop has commit -> stepped":                                                 2,
		"bus reply: backup -> client":                                                             187,
		"client: socket read -> reply callback [1 hand-off: nats.go reader -> subscription]":      10,
		"client: reply callback -> request goroutine woken [1 hand-off]":                          10,
		"backup: commit callback -> node loop [1 hand-off: bus handler -> node goroutine]":        2,
		"primary: request callback -> node loop [1 hand-off: bus handler -> node goroutine]":      2,
		"backup: socket read -> preprepare callback [1 hand-off: nats.go reader -> subscription]": 10,
	}
	for label, d := range want {
		if got := tl.seg[label]; len(got) != 1 || got[0] != d {
			t.Errorf("%s: %v, want [%d]", label, got, d)
		}
	}
	var sum int64
	for _, v := range tl.seg {
		sum += v[0]
	}
	if sum != 620 || len(tl.total) != 1 || tl.total[0] != 620 {
		t.Errorf("segments sum to %d, total %v; want 620 (invoke at 1000, woken at 1620)", sum, tl.total)
	}
}
