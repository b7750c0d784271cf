package pbft

import "testing"

// TestRecycleReusesMessages: a Ready's messages handed back collect the next Ready's,
// without the old ones (nothing of the previous Ready is sent twice), and a slice too
// large is not kept.
func TestRecycleReusesMessages(t *testing.T) {
	r, err := NewReplica(fzConfig(0))
	if err != nil {
		t.Fatal(err)
	}
	r.broadcast(&Commit{Seq: 1})
	r.broadcast(&Commit{Seq: 2})
	first := r.Ready().Messages
	r.Recycle(first)
	r.broadcast(&Commit{Seq: 3})
	second := r.Ready().Messages
	if len(second) != 1 || second[0].Msg.(*Commit).Seq != 3 {
		t.Fatalf("second Ready: %+v, want only the commit of 3", second)
	}
	if &first[:1][0] != &second[0] {
		t.Fatal("the second Ready did not reuse the recycled slice")
	}
	if first[:2][1].Msg != nil {
		t.Fatal("a recycled slice still holds the previous Ready's message")
	}
	r.Recycle(make([]Outbound, 0, maxRecycled+1))
	r.broadcast(&Commit{Seq: 4})
	if got := r.Ready().Messages; cap(got) > maxRecycled {
		t.Fatalf("a slice of capacity %d was kept", cap(got))
	}
}
