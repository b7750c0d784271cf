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
