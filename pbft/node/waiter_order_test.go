package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/internal/poll"
	"github.com/pbft-nats/pbft/pbft"
)

// A query that waits for an execution is answered after the reply of that execution, even
// when the messages that execute it and the query reach the node together (one drain of
// its inbox). A gateway settles on the answer ("the replica has executed it, and its reply
// came first on the same connection"), so an answer ahead of the reply made a replica that
// had replied count as silent: the golden case read-only-with-an-equivocating-backup
// answered "replies": 3 instead of 4 on a loaded machine. Before, handleQuery answered at
// once, ahead of the flush that sends the reply.
func TestWaitingQueryIsAnsweredAfterTheReply(t *testing.T) { queryAfterReply(t, "") }

// The same with a durable log, where the reply waits for its commit record and the answer
// for every record handed to the writer (afterDurable): the answer still comes second,
// and not before the execution it reports is durable. Before, the answer left at once,
// mid-drain, when the records of that drain were not yet even handed to the writer.
func TestWaitingQueryIsAnsweredAfterTheDurableReply(t *testing.T) {
	queryAfterReply(t, t.TempDir())
}

func queryAfterReply(t *testing.T, dataDir string) {
	n, rec, keys := newSinkNodeAs(t, "n2", dataDir)
	ids := []string{"n1", "n2", "n3", "n4"}

	req := &pbft.Request{Gateway: "gw", Client: "c1", Timestamp: 1, Op: []byte("set x=1")}
	req.Auth = keys["gw"].RequestTags(pbft.RequestDigest(req))
	batch := []*pbft.Request{req}
	d := pbft.BatchDigest(batch)
	fromReplica := func(from string, m pbft.Message) {
		kind := m.Kind().String()
		n.inbox.push(item{msg: bus.Message{From: from, Kind: kind, Data: keys[from].Seal("n2", kind, frame(0, pbft.Marshal(m)))}})
	}
	// Everything that executes number 1 at n2, then the query, queued before the node runs:
	// its first drain takes them all.
	fromReplica("n1", &pbft.PrePrepare{View: 0, Seq: 1, Digest: d, Batch: batch})
	for i, id := range ids {
		if id != "n1" && id != "n2" {
			fromReplica(id, &pbft.Prepare{View: 0, Seq: 1, Digest: d, Replica: i})
		}
	}
	for i, id := range ids {
		if id != "n2" {
			fromReplica(id, &pbft.Commit{View: 0, Seq: 1, Digest: d, Replica: i})
		}
	}
	q := &Query{ID: 1, Op: OpInfo, Wait: &pbft.Wait{MinExecuted: 1}, WaitMillis: 10_000}
	n.inbox.push(item{msg: bus.Message{From: "gw", Kind: KindQuery, Data: keys["gw"].Seal("n2", KindQuery, EncodeQuery(q))}})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	poll.Eventually(t, 5*time.Second, "n2 answers the query", func() bool {
		return slices.Contains(rec.kindsTo("gw"), KindAnswer)
	})
	kinds := rec.kindsTo("gw")
	answer := slices.Index(kinds, KindAnswer)
	reply := slices.IndexFunc(kinds, func(k string) bool { return k == pbft.KindReply.String() || k == KindReplies })
	if reply < 0 || reply > answer {
		t.Fatalf("sent to the gateway, in order: %v; want the reply before the answer", kinds)
	}
}
