package node

import (
	"testing"

	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
)

// The core may put its own VIEW-CHANGE into a NEW-VIEW (a copy without its batches) in
// the very step that made it, before the driver ever signed it. The NEW-VIEW must still
// verify at the backups: the driver signs that copy too. (Found as a view change that
// went on to the next view now and then; the simulator has no signatures to catch it.)
func TestOwnViewChangeCopiedIntoNewViewIsSigned(t *testing.T) {
	ids := []string{"n1", "n2", "n3", "n4"}
	keys, err := auth.GenerateKeyrings(append([]string{"gw"}, ids...), ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	primary := &Node{keys: keys["n2"], ids: ids, self: 1} // primary of view 1
	backup := &Node{keys: keys["n3"], ids: ids, self: 2}
	batch := []*pbft.Request{{Gateway: "gw", Client: "c", Timestamp: 1, Op: []byte("set x=1")}}
	own := &pbft.ViewChange{NewView: 1, Replica: 1, P: []pbft.Prepared{{Seq: 1, Digest: pbft.BatchDigest(batch), Batch: batch}}}
	nv := &pbft.NewView{View: 1, Replica: 1, ViewChanges: []*pbft.ViewChange{pbft.StripBatches(own)}}
	primary.sign(own)
	primary.sign(nv)
	if err := backup.verifyInner(own); err != nil {
		t.Fatalf("the view-change itself: %v", err)
	}
	if err := backup.verifyInner(nv); err != nil {
		t.Fatalf("the new-view with the view-change's copy: %v", err)
	}
}
