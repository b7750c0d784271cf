package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/internal/topology"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway"
	"github.com/pbft-nats/pbft/pbft/node"
)

// durable gives every replica a data dir of its own, and checkpoints often enough that
// a run goes through many compactions of the durable log.
var durable = topology.Options{Replicas: fourNodes, DataDirs: true, Env: []string{
	"PBFT_CHECKPOINT_INTERVAL=16", "PBFT_LOG_WINDOW=32",
	"PBFT_VIEW_CHANGE_TIMEOUT=300ms", "PBFT_REQUEST_TIMEOUT=5s",
}}

// inspector queries replicas directly over the bus, as a tool comparing them would.
type inspector struct {
	t  *testing.T
	c  *cluster
	gw *gateway.External
}

func (c *cluster) inspector() *inspector {
	c.t.Helper()
	id := c.nextGatewayID()
	s := config.Default()
	s.KeysDir, s.ClientID, s.Cluster = c.top.KeysDir(), id, c.name
	gw, err := gateway.ConnectExternal(c.top.NATSURL(id), c.ids, s)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(gw.Close)
	return &inspector{t: c.t, c: c, gw: gw}
}

// converged polls until every replica answers with the same last executed number (at
// least min) and the same state digest, and returns them.
func (in *inspector) converged(min uint64, timeout time.Duration) (uint64, string) {
	in.t.Helper()
	var exec uint64
	var digest, last string
	err := poll.Within(timeout, 100*time.Millisecond, func() (bool, error) {
		var states []string
		exec, digest = 0, ""
		same := true
		for i, id := range in.c.ids {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			a, err := in.gw.Client().Query(ctx, id, &node.Query{Op: node.OpInfo, Digest: true, WaitMillis: 500})
			cancel()
			if err != nil {
				states = append(states, id+": "+err.Error())
				same = false
				continue
			}
			states = append(states, fmt.Sprintf("%s: view %d exec %d stable %d digest %.12s", id, a.View, a.LastExecuted, a.StableCheckpoint, a.StateDigest))
			if i == 0 {
				exec, digest = a.LastExecuted, a.StateDigest
			} else if a.LastExecuted != exec || a.StateDigest != digest {
				same = false
			}
		}
		last = strings.Join(states, "; ")
		return same && exec >= min && digest != "", nil
	})
	if err != nil {
		in.t.Fatalf("replicas did not converge (%v): %s", err, last)
	}
	in.t.Logf("converged: %s", last)
	return exec, digest
}

// startDurable starts a durable cluster, an inspector of it and a session that has
// sent init (msg_id 1).
func startDurable(t *testing.T) (*cluster, *inspector, *session) {
	t.Helper()
	c := startCluster(t, buildBinaries(t), durable)
	in := c.inspector()
	s := c.startSession()
	if r := s.roundTrip(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}`, 1, 10*time.Second); r.Body.Type != "init_ok" {
		t.Fatalf("init: %+v", r.Body)
	}
	return c, in, s
}

// loadResult is what one pipelined burst of sets got back.
type loadResult struct {
	answered map[int]uint64 // key index -> sequence number it was answered at
	failed   int
}

// pipelinedSets sends sets of keys [from, to) without waiting, calls during(k) after the
// k-th answer is read, and collects every answer.
func pipelinedSets(t *testing.T, s *session, from, to int, msgID *int64, during func(k int)) loadResult {
	t.Helper()
	ids := map[int64]int{}
	for i := from; i < to; i++ {
		*msgID++
		ids[*msgID] = i
		s.send(fmt.Sprintf(`{"src":"c1","dest":"n%d","body":{"type":"pbft_execute","msg_id":%d,"operation":"set k%d=v%d","client":"c1"}}`, 1+i%4, *msgID, i, i))
	}
	res := loadResult{answered: map[int]uint64{}}
	for k := 1; k <= to-from; k++ {
		r := s.next(30 * time.Second)
		if r.Body.InReplyTo == nil {
			t.Fatalf("reply without in_reply_to: %+v", r)
		}
		i, ok := ids[*r.Body.InReplyTo]
		if !ok {
			t.Fatalf("reply to an unknown msg_id: %+v", r)
		}
		if r.Body.Type == "pbft_execute_ok" && r.Body.Result != nil && *r.Body.Result == "OK" {
			res.answered[i] = r.Body.SequenceNumber
		} else {
			res.failed++
			t.Logf("set k%d: %s %d %s", i, r.Body.Type, deref(r.Body.Code), r.Body.Text)
		}
		if during != nil {
			during(k)
		}
	}
	return res
}

// TestKillAllReplicasDuringLoad kills -9 every replica process in the middle of a burst
// of requests and starts them again on their data dirs: every request a client saw
// answered is still executed at the same number, every replica has the same state, and
// the cluster serves again. Then one replica loses its data dir and rebuilds from peers.
func TestKillAllReplicasDuringLoad(t *testing.T) {
	c, in, s := startDurable(t)
	var msgID int64 = 1

	// 1. A burst of 200 sets; after 80 answers, the whole cluster dies and comes back.
	killedAt := time.Time{}
	res := pipelinedSets(t, s, 0, 200, &msgID, func(k int) {
		if k == 80 {
			c.kill(c.ids...)
			killedAt = time.Now()
			for _, id := range c.ids {
				c.startReplica(id)
			}
		}
	})
	t.Logf("burst: %d answered, %d failed; restarted cluster answered the rest %v after the kill",
		len(res.answered), res.failed, time.Since(killedAt).Round(time.Millisecond))
	if len(res.answered) < 80 {
		t.Fatalf("only %d of 200 answered", len(res.answered))
	}
	var maxSeq uint64
	for _, seq := range res.answered {
		maxSeq = max(maxSeq, seq)
	}
	exec, _ := in.converged(maxSeq, 30*time.Second)

	// 2. Every answered set reads back; the cluster serves new requests.
	checkReads(t, s, res.answered, &msgID)
	more := pipelinedSets(t, s, 200, 240, &msgID, nil)
	if len(more.answered) != 40 {
		t.Fatalf("after the restart: %d of 40 new sets answered", len(more.answered))
	}

	// 3. n3 loses its data dir while down; it rebuilds from its peers.
	c.kill("n3")
	if err := os.RemoveAll(c.top.DataDir("n3")); err != nil {
		t.Fatal(err)
	}
	c.startReplica("n3")
	more2 := pipelinedSets(t, s, 240, 300, &msgID, nil)
	if len(more2.answered) != 60 {
		t.Fatalf("with n3 rebuilding: %d of 60 sets answered", len(more2.answered))
	}
	exec2, _ := in.converged(exec+1, 30*time.Second)
	t.Logf("n3 rebuilt from an empty data dir: all replicas at %d", exec2)
	for k, v := range more2.answered {
		res.answered[k] = v
	}
	for k, v := range more.answered {
		res.answered[k] = v
	}
	checkReads(t, s, res.answered, &msgID)
	s.close(10 * time.Second)
}

// checkReads gets every answered key and requires its value.
func checkReads(t *testing.T, s *session, answered map[int]uint64, msgID *int64) {
	t.Helper()
	want := map[int64]int{}
	for i := range answered {
		*msgID++
		want[*msgID] = i
		s.send(fmt.Sprintf(`{"src":"c2","dest":"n2","body":{"type":"pbft_execute","msg_id":%d,"operation":"get k%d","client":"c2"}}`, *msgID, i))
	}
	for range want {
		r := s.next(30 * time.Second)
		i := want[*r.Body.InReplyTo]
		if r.Body.Type != "pbft_execute_ok" || r.Body.Result == nil || *r.Body.Result != fmt.Sprintf("v%d", i) {
			t.Errorf("get k%d after the restart: %+v, want v%d", i, r.Body, i)
		}
	}
}

// TestDamagedDataDirStopsTheReplica flips one byte of a replica's durable log: the
// replica must refuse to start, saying why, rather than serve from it; moved away, the
// replica rebuilds from its peers.
func TestDamagedDataDirStopsTheReplica(t *testing.T) {
	c, in, s := startDurable(t)
	var msgID int64 = 1
	res := pipelinedSets(t, s, 0, 50, &msgID, nil)
	if len(res.answered) != 50 {
		t.Fatalf("%d of 50 answered", len(res.answered))
	}
	c.kill("n4")
	logPath := filepath.Join(c.top.DataDir("n4"), "log")
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The log file is preallocated: its records are followed by zeros. Damage the middle
	// of the records.
	data[len(bytes.TrimRight(data, "\x00"))/2] ^= 0x40
	if err := os.WriteFile(logPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	p := c.startReplica("n4")
	if !p.WaitExit(10 * time.Second) {
		t.Fatal("replica n4 runs on a damaged log")
	}
	if p.Err() == nil || !strings.Contains(p.Log(), "damaged log") || !strings.Contains(p.Log(), "rebuild this replica from its peers") {
		t.Fatalf("n4 exit %v, stderr:\n%s", p.Err(), p.Log())
	}
	t.Logf("n4 refused its damaged log: %s", strings.TrimSpace(p.Log()))

	if err := os.Rename(c.top.DataDir("n4"), filepath.Join(c.top.Dir(), "damaged-n4")); err != nil {
		t.Fatal(err)
	}
	c.startReplica("n4")
	more := pipelinedSets(t, s, 50, 60, &msgID, nil)
	if len(more.answered) != 10 {
		t.Fatalf("%d of 10 answered", len(more.answered))
	}
	exec, _ := in.converged(1, 30*time.Second)

	// A log cut in the middle of its last record (what a machine crash during an append
	// leaves) loses only that unsynced record: the replica starts from the rest.
	c.kill("n2")
	logPath = filepath.Join(c.top.DataDir("n2"), "log")
	data, err = os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(logPath, int64(len(bytes.TrimRight(data, "\x00")))-3); err != nil {
		t.Fatal(err)
	}
	p = c.startReplica("n2")
	more = pipelinedSets(t, s, 60, 70, &msgID, nil)
	if len(more.answered) != 10 {
		t.Fatalf("%d of 10 answered", len(more.answered))
	}
	in.converged(exec+10, 30*time.Second)
	if !strings.Contains(p.Log(), "cut an incomplete last record") {
		t.Errorf("n2 did not report the torn record:\n%s", p.Log())
	}
	s.close(10 * time.Second)
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// TestKillAllReplicasTwiceThreeNATS is the deployed topology (3 clustered NATS servers)
// with the durable log written off each replica's loop (issue 19): every replica is
// killed -9 twice during one pipelined burst; no set a client saw answered is lost, and
// the replicas agree.
func TestKillAllReplicasTwiceThreeNATS(t *testing.T) {
	o := durable
	o.NATSServers = 3
	c := startCluster(t, buildBinaries(t), o)
	in := c.inspector()
	s := c.startSession()
	if r := s.roundTrip(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}`, 1, 10*time.Second); r.Body.Type != "init_ok" {
		t.Fatalf("init: %+v", r.Body)
	}
	var msgID int64 = 1
	res := pipelinedSets(t, s, 0, 300, &msgID, func(k int) {
		if k == 60 || k == 180 {
			c.kill(c.ids...)
			for _, id := range c.ids {
				c.startReplica(id)
			}
		}
	})
	t.Logf("burst: %d answered, %d failed", len(res.answered), res.failed)
	if len(res.answered) < 180 {
		t.Fatalf("only %d of 300 answered", len(res.answered))
	}
	var maxSeq uint64
	for _, seq := range res.answered {
		maxSeq = max(maxSeq, seq)
	}
	in.converged(maxSeq, 30*time.Second)
	checkReads(t, s, res.answered, &msgID)
	s.close(10 * time.Second)
}
