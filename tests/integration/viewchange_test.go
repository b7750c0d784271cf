package integration

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/topology"
)

// TestKillPrimaryWhileClientsSend kills the process of the primary of view 0 halfway
// through a client's requests: the following requests must still be answered (after a
// view change), and every answered request must stay executed.
func TestKillPrimaryWhileClientsSend(t *testing.T) {
	start := time.Now()
	b := buildBinaries(t)
	testDeadline := time.Now().Add(60 * time.Second)
	// per-answer wait: the request timeout plus a margin, within the test's budget
	wait := func() time.Duration {
		d := time.Until(testDeadline)
		if d > 12*time.Second {
			d = 12 * time.Second
		}
		if d <= 0 {
			t.Fatalf("test budget of 60s used up")
		}
		return d
	}
	c := startCluster(t, b, topology.Options{Replicas: fourNodes, Env: []string{"PBFT_VIEW_CHANGE_TIMEOUT=300ms", "PBFT_REQUEST_TIMEOUT=8s"}})
	s := c.startSession()

	var msgID int64
	next := func() int64 { msgID++; return msgID }

	id := next()
	if r := s.roundTrip(fmt.Sprintf(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":%d,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}`, id), id, wait()); r.Body.Type != "init_ok" {
		t.Fatalf("init: got %+v", r.Body)
	}

	execute := func(dest, op string) *reply {
		t.Helper()
		id := next()
		line := fmt.Sprintf(`{"src":"c1","dest":%q,"body":{"type":"pbft_execute","msg_id":%d,"operation":%q,"client":"c1"}}`, dest, id, op)
		sent := time.Now()
		r := s.roundTrip(line, id, wait())
		if r.Body.Type != "pbft_execute_ok" {
			t.Fatalf("%q to %s: got %s %+v, want pbft_execute_ok", op, dest, r.Body.Type, r.Body)
		}
		if r.Src != dest || r.Dest != "c1" {
			t.Errorf("%q: reply from %s to %s, want from %s to c1", op, r.Src, r.Dest, dest)
		}
		if r.Body.Replies < 2 {
			t.Errorf("%q: %d matching replies, want at least f+1 = 2", op, r.Body.Replies)
		}
		if r.Body.Result == nil {
			t.Fatalf("%q: no result in %+v", op, r.Body)
		}
		if d := time.Since(sent); d > time.Second {
			t.Logf("%q to %s answered in %v: seq %d view %d", op, dest, d.Round(time.Millisecond), r.Body.SequenceNumber, r.Body.View)
		}
		return r
	}

	var lastSeq uint64
	for i := 1; i <= 20; i++ {
		dest := "n1"
		if i > 10 {
			dest = "n2"
		}
		r := execute(dest, fmt.Sprintf("set k%d=%d", i, i))
		if *r.Body.Result != "OK" {
			t.Errorf("set k%d: result %q, want OK", i, *r.Body.Result)
		}
		if r.Body.SequenceNumber <= lastSeq {
			t.Errorf("set k%d: sequence number %d, not above the previous answer's %d", i, r.Body.SequenceNumber, lastSeq)
		}
		lastSeq = r.Body.SequenceNumber
		if i > 10 && r.Body.View < 1 {
			t.Errorf("set k%d: ordered in view %d after the primary of view 0 was killed", i, r.Body.View)
		}
		if i == 10 {
			pid := c.process("n1").Pid()
			c.kill("n1") // SIGKILL, by PID; fails the test unless n1 dies
			t.Logf("killed n1 (pid %d) after %v", pid, time.Since(start).Round(time.Millisecond))
		}
	}
	t.Logf("20 sets answered after %v", time.Since(start).Round(time.Millisecond))

	for i := 1; i <= 20; i++ {
		r := execute("n2", fmt.Sprintf("get k%d", i))
		if want := strconv.Itoa(i); *r.Body.Result != want {
			t.Errorf("get k%d = %q, want %q", i, *r.Body.Result, want)
		}
	}
	t.Logf("20 gets answered after %v", time.Since(start).Round(time.Millisecond))

	id = next()
	sent := time.Now()
	r := s.roundTrip(fmt.Sprintf(`{"src":"c0","dest":"n2","body":{"type":"pbft_cluster","msg_id":%d}}`, id), id, wait())
	t.Logf("pbft_cluster answered in %v: %+v", time.Since(sent).Round(time.Millisecond), r.Body)
	if r.Body.Type != "pbft_cluster_ok" {
		t.Fatalf("pbft_cluster: got %+v", r.Body)
	}
	if r.Body.View < 1 || r.Body.Primary == "n1" || r.Body.Primary == "" {
		t.Errorf("pbft_cluster at n2: view %d, primary %q; want view >= 1 and a primary other than n1", r.Body.View, r.Body.Primary)
	}
	for _, rep := range r.Body.Replicas {
		if rep.Node != "n1" && rep.LastExecuted < 40 {
			t.Errorf("replica %s executed up to %d, want at least the 40 requests answered", rep.Node, rep.LastExecuted)
		}
	}

	s.close(10 * time.Second)
	if time.Now().After(testDeadline) {
		t.Errorf("test took %v, want under 60s", time.Since(start))
	}
	t.Logf("whole test: %v", time.Since(start).Round(time.Millisecond))
}
