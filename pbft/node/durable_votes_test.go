package node

import (
	"testing"

	"github.com/pbft-nats/pbft/pbft"
)

type nopApp struct{}

func (nopApp) Execute([]byte) []byte { return nil }
func (nopApp) Snapshot() []byte      { return nil }
func (nopApp) Restore([]byte) error  { return nil }

// Votes wait only for the records that put the replica in its view (pbft/durable.go):
// not for pre-prepare or commit records, theirs or earlier ones; everything else waits
// for every record handed out before it.
func TestVotesWaitOnlyForViewRecords(t *testing.T) {
	c := pbft.DefaultConfig()
	c.ID, c.N, c.App, c.Durable = 1, 4, nopApp{}, true
	r, err := pbft.NewReplica(c)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{r: r}
	n.dur.writer = &walWriter{wake: make(chan struct{}, 1)} // never writes: nothing syncs
	held := func() (gens []uint64, kinds []string) {
		for _, h := range n.dur.held {
			gens = append(gens, h.gen)
			kinds = append(kinds, h.msgs[0].Msg.Kind().String())
		}
		return
	}
	pp := func(seq uint64) *pbft.PrePrepare {
		return &pbft.PrePrepare{View: 1, Seq: seq, Digest: pbft.BatchDigest(nil)}
	}
	prepare := func(seq uint64) pbft.Outbound {
		return pbft.Outbound{To: pbft.Broadcast, Msg: &pbft.Prepare{View: 1, Seq: seq, Replica: 1}}
	}
	commit := &pbft.Commit{View: 1, Seq: 1, Replica: 1}

	// Gen 1: the view's NEW-VIEW record, with the prepares of its pre-prepares: they wait.
	if !n.persist(&pbft.Ready{Persist: []pbft.Message{&pbft.NewView{View: 1}, pp(1)}, Messages: []pbft.Outbound{prepare(1)}}, FaultCrash) {
		t.Fatal("a prepare went before its view's NEW-VIEW record was durable")
	}
	// Gen 2: a pre-prepare accepted and its prepare; the commit of number 1.
	n.persist(&pbft.Ready{Persist: []pbft.Message{pp(2), commit}, Messages: []pbft.Outbound{prepare(2), {To: pbft.Broadcast, Msg: commit}}}, FaultCrash)
	if gens, kinds := held(); len(gens) != 3 || gens[0] != 1 || gens[1] != 1 || gens[2] != 2 || kinds[2] != "commit" {
		t.Fatalf("held %v %v, want the prepares for gen 1 and the commit for gen 2", gens, kinds)
	}
	n.durableAt(1, nil) // sends both prepares
	if gens, kinds := held(); len(gens) != 1 || kinds[0] != "commit" {
		t.Fatalf("held %v %v after gen 1, want the commit alone", gens, kinds)
	}
	// Gen 3: a pre-prepare while gen 2 is unsynced: its prepare goes at once.
	n.persist(&pbft.Ready{Persist: []pbft.Message{pp(3)}, Messages: []pbft.Outbound{prepare(3)}}, FaultCrash)
	if gens, _ := held(); len(gens) != 1 {
		t.Fatalf("held %v: a prepare waited for pre-prepare and commit records", gens)
	}
	// Gen 4: a checkpoint record; a prepare after it waits for it.
	n.persist(&pbft.Ready{Persist: []pbft.Message{&pbft.Checkpoint{Seq: 8, Replica: 1}}}, FaultCrash)
	n.persist(&pbft.Ready{Persist: []pbft.Message{pp(4)}, Messages: []pbft.Outbound{prepare(4)}}, FaultCrash)
	if gens, _ := held(); len(gens) != 2 || gens[1] != 4 {
		t.Fatalf("held %v, want the prepare after the checkpoint record to wait for it (gen 4)", gens)
	}
}
