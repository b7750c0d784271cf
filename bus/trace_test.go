package bus

import (
	"errors"
	"testing"
	"time"
)

func TestTraceSubjects(t *testing.T) {
	if got := traceSubject("c", "n1"); got != "pbft.c.trace.n1.events" {
		t.Fatalf("traceSubject = %q", got)
	}
	if got := TraceFilter("c"); got != "pbft.c.trace.*.events" {
		t.Fatalf("TraceFilter = %q", got)
	}
	for subj, want := range map[string]string{
		"pbft.c.trace.n1.events":  "n1",
		"pbft.c.trace.n1":         "",
		"pbft.d.trace.n1.events":  "",
		"pbft.c.trace.a.b.events": "",
		"pbft.c.trace..events":    "",
		"pbft.c.commit.n1":        "",
	} {
		got, ok := TraceSender("c", subj)
		if got != want || ok != (want != "") {
			t.Errorf("TraceSender(%q) = %q, %v; want %q", subj, got, ok, want)
		}
	}
}

// Trace events reach a trace subscriber with their sender, and never a replica's
// protocol handler: a broadcast published after them arrives first at the replica.
func TestTracePublishAndSubscribe(t *testing.T) {
	s := startServer(t, 0)
	got := make(chan Message, 16)
	join := func(id string, h Handler) *NATSTransport {
		nc, err := ConnectInProcess(s, id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		tr, err := NewNATS(nc, "test", id, RoleReplica, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	n1 := join("n1", func(Message) {})
	join("n2", func(m Message) { got <- m })

	viewer, err := ConnectInProcess(s, "viewer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(viewer.Close)
	traces := make(chan [2]string, 16)
	sub, err := SubscribeTrace(viewer, "test", func(sender string, data []byte) { traces <- [2]string{sender, string(data)} })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	if err := n1.PublishTrace([]byte(`{"type":"send"}`)); err != nil {
		t.Fatal(err)
	}
	if err := n1.Broadcast("commit", []byte("vote")); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	select {
	case m := <-got:
		if m.Kind != "commit" || m.From != "n1" || string(m.Data) != "vote" {
			t.Fatalf("replica n2 received %+v, want only the commit", m)
		}
	case <-timeout:
		t.Fatal("broadcast not delivered")
	}
	select {
	case tr := <-traces:
		if tr != [2]string{"n1", `{"type":"send"}`} {
			t.Fatalf("trace subscriber got %q", tr)
		}
	case <-timeout:
		t.Fatal("trace not delivered")
	}
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n1.PublishTrace([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("PublishTrace after Close: %v", err)
	}
	if _, err := SubscribeTrace(viewer, "bad.cluster", func(string, []byte) {}); err == nil {
		t.Fatal("invalid cluster accepted")
	}
}
