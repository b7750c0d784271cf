package trace

import (
	"strings"
	"testing"
	"time"
)

// roundEvents is what four healthy replicas emit for one request ordered at #1 in view 0
// by n1, in a plausible interleaving.
func roundEvents() []Event {
	d := Short{0x7f, 0xe5, 0x8a, 0x1b}
	nodes := []string{"n1", "n2", "n3", "n4"}
	var evs []Event
	add := func(e Event) {
		e.T = int64(len(evs) + 1)
		evs = append(evs, e)
	}
	add(Event{Node: "n1", Type: Recv, Kind: "request", From: "gw", To: "n1", Client: "c1"})
	add(Event{Node: "n1", Type: Send, Kind: "preprepare", Seq: 1, Digest: d, From: "n1", To: Broadcast, Client: "c1", Count: 1})
	for _, b := range nodes[1:] {
		add(Event{Node: b, Type: Recv, Kind: "preprepare", Seq: 1, Digest: d, From: "n1", To: b, Client: "c1", Count: 1})
	}
	for _, b := range nodes[1:] {
		for _, r := range nodes {
			if r != b {
				add(Event{Node: r, Type: Recv, Kind: "prepare", Seq: 1, Digest: d, From: b, To: r})
			}
		}
	}
	for _, r := range nodes {
		add(Event{Node: r, Type: Prepared, Seq: 1, Digest: d, Count: 3})
	}
	for _, s := range nodes {
		for _, r := range nodes {
			if r != s {
				add(Event{Node: r, Type: Recv, Kind: "commit", Seq: 1, Digest: d, From: s, To: r})
			}
		}
	}
	for _, r := range nodes {
		add(Event{Node: r, Type: Committed, Seq: 1, Digest: d, Count: 4})
		add(Event{Node: r, Type: Executed, Seq: 1})
		add(Event{Node: r, Type: Send, Kind: "reply", Seq: 1, From: r, To: "gw", Client: "c1"})
	}
	return evs
}

const wantRound = `                 gw         n1         n2         n3         n4
─── #1 view 0 d=7fe58a1b (1 request) primary n1
 request          ●──────────▶          │          │          │      c1
 pre-prepare      │          ●──────────▶──────────▶──────────▶
 prepare          │          ◀──────────●──────────▶──────────▶
 prepare          │          ◀──────────◀──────────●──────────▶
 prepare          │          ◀──────────◀──────────◀──────────●
 prepared         │          ◆3/2       ◆3/2       ◆3/2       ◆3/2
 commit           │          ●──────────▶──────────▶──────────▶
 commit           │          ◀──────────●──────────▶──────────▶
 commit           │          ◀──────────◀──────────●──────────▶
 commit           │          ◀──────────◀──────────◀──────────●
 committed        │          ●4/3       ●4/3       ●4/3       ●4/3
 executed         │          ■          ■          ■          ■
 reply            ◀──────────●──────────●──────────●──────────●      4 replies
`

func TestDiagramRound(t *testing.T) {
	var out strings.Builder
	d := NewDiagram(&out, "gw", []string{"n1", "n2", "n3", "n4"}, false)
	now := time.Unix(100, 0)
	for _, e := range roundEvents() {
		d.Add(e, now)
	}
	// Not quiet yet: nothing printed.
	if err := d.Flush(now.Add(d.Quiet/2), false); err != nil || out.Len() != 0 {
		t.Fatalf("printed before the round was quiet: %q %v", out.String(), err)
	}
	if err := d.Flush(now.Add(d.Quiet), false); err != nil {
		t.Fatal(err)
	}
	if out.String() != wantRound {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), wantRound)
	}
}

// A view change prints as a band listing who started it and who entered the new view,
// and a crashed replica's lifeline is dotted.
func TestDiagramViewChange(t *testing.T) {
	var out strings.Builder
	d := NewDiagram(&out, "gw", []string{"n1", "n2", "n3", "n4"}, false)
	now := time.Unix(100, 0)
	d.Add(Event{T: 1, Node: "n1", Type: Replica, Fault: "crash"}, now)
	d.Note("» crash n1", time.Unix(0, 1)) // before the view change events (T 2 and on)
	for i, n := range []string{"n2", "n3", "n4"} {
		d.Add(Event{T: int64(2 + i), Node: n, Type: ViewChange, View: 1}, now)
	}
	d.Add(Event{T: 6, Node: "n3", Type: Recv, Kind: "newview", View: 1, From: "n2", To: "n3"}, now)
	for i, n := range []string{"n2", "n3", "n4"} {
		d.Add(Event{T: int64(7 + i), Node: n, Type: NewView, View: 1, Primary: "n2", Active: true}, now)
	}
	if err := d.Flush(now, true); err != nil {
		t.Fatal(err)
	}
	want := `                 gw         n1!        n2         n3         n4
» crash n1
═══ view change to view 1 (primary n2)
 new-view         │          ┊          ●──────────▶          │
                  │          ┊          ◉──────────◉──────────◉      n2 in view 1, n3 in view 1, n4 in view 1
`
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// n1Drawn reports whether a diagram line of replicas n1.. (client column first) has a
// message, certificate or band mark in n1's column.
func n1Drawn(line string) bool {
	r := []rune(line)
	i := labelWidth + colWidth + colWidth/2 // the centre of column 1
	return i < len(r) && strings.ContainsRune("●◀▶◆■◉", r[i])
}

// A fault switch divides the sequence: nothing of a crashed replica is drawn while it is
// crashed, and what it does after it recovers comes after the recovery, in a block of
// its own, although its round was still held open when the switch came.
func TestDiagramFaultSwitches(t *testing.T) {
	var out strings.Builder
	d := NewDiagram(&out, "gw", []string{"n1", "n2", "n3", "n4"}, false)
	now := time.Unix(100, 0)
	dg := Short{1, 2, 3, 4}
	d.Switch("n1", "crash", "» crash n1", time.Unix(0, 10))
	// Delivered before the crash and never ordered there: not drawn in a later round.
	d.Add(Event{T: 5, Node: "n1", Type: Recv, Kind: "request", From: "gw", To: "n1", Client: "c"}, now)
	d.Add(Event{T: 19, Node: "n2", Type: Recv, Kind: "request", From: "gw", To: "n2", Client: "c"}, now)
	d.Add(Event{T: 20, Node: "n2", Type: Send, Kind: "preprepare", View: 1, Seq: 3, Digest: dg, From: "n2", To: Broadcast, Client: "c", Count: 1}, now)
	for i, n := range []string{"n3", "n4"} {
		d.Add(Event{T: int64(21 + i), Node: n, Type: Recv, Kind: "preprepare", View: 1, Seq: 3, Digest: dg, From: "n2", To: n, Client: "c", Count: 1}, now)
	}
	// Stamped while n1 is crashed: not drawn.
	d.Add(Event{T: 25, Node: "n1", Type: Send, Kind: "commit", View: 1, Seq: 3, Digest: dg, From: "n1", To: Broadcast}, now)
	d.Add(Event{T: 26, Node: "n2", Type: Recv, Kind: "commit", View: 1, Seq: 3, Digest: dg, From: "n1", To: "n2"}, now)
	d.Switch("n1", "none", "» recover n1", time.Unix(0, 30))
	d.Add(Event{T: 40, Node: "n1", Type: Recv, Kind: "preprepare", View: 1, Seq: 3, Digest: dg, From: "n2", To: "n1", Count: 1}, now)
	d.Add(Event{T: 41, Node: "n2", Type: Recv, Kind: "prepare", View: 1, Seq: 3, Digest: dg, From: "n1", To: "n2"}, now)
	d.Add(Event{T: 42, Node: "n1", Type: Prepared, View: 1, Seq: 3, Digest: dg, Count: 2}, now)
	if err := d.Flush(now, true); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	before, after, ok := strings.Cut(text, "» recover n1\n")
	if !ok || !strings.Contains(before, "» crash n1\n") {
		t.Fatalf("switches missing:\n%s", text)
	}
	for _, l := range strings.Split(before, "\n") {
		if n1Drawn(l) {
			t.Errorf("n1 drawn while crashed: %q", l)
		}
	}
	if !strings.Contains(before, "─── #3 view 1 d=01020304 (1 request) primary n2\n") {
		t.Errorf("the round before the recovery is missing")
	}
	if !strings.HasPrefix(after, "─── #3 view 1 d=01020304 (1 request) primary n2 (continued)\n") {
		t.Errorf("no continuation of the round after the recovery")
	}
	drawn := 0
	for _, l := range strings.Split(after, "\n") {
		if n1Drawn(l) {
			drawn++
		}
	}
	if drawn < 3 { // pre-prepare received, prepare sent, prepared
		t.Errorf("n1's lines after its recovery: %d, want 3", drawn)
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}
}
