package client

import (
	"maps"
	"slices"
	"testing"

	"github.com/pbft-nats/pbft/pbft"
)

// Read-only replies are kept apart from ordered ones, a replica's latest counts, and they
// match on the result alone: each replica reads at its own last executed number.
func TestReplySetReadOnlyReplies(t *testing.T) {
	ro := func(seq uint64, result string) *pbft.Reply {
		return &pbft.Reply{Seq: seq, View: 1, Result: []byte(result), ReadOnly: true}
	}
	s := &ReplySet{byRep: map[string]*pbft.Reply{}, readOnly: map[string]*pbft.Reply{}}
	s.add("n1", ro(4, "v"))
	s.add("n2", ro(5, "v"))
	s.add("n3", ro(5, "old"))
	s.add("n3", ro(5, "v")) // its latest counts
	s.add("n4", &pbft.Reply{Seq: 6, Result: []byte("v")})
	best, all := s.ReadOnlyBest()
	if string(best.Value) != "v" || best.Replies != 3 || best.Seq != 5 || best.View != 1 ||
		!slices.Equal(slices.Sorted(maps.Keys(best.From)), []string{"n1", "n2", "n3"}) || len(all) != 3 {
		t.Fatalf("read-only best %+v, all %v", best, all)
	}
	if ordered, all := s.Best(); ordered.Replies != 1 || len(all) != 1 || !all["n4"] {
		t.Fatalf("ordered best %+v, all %v: read-only replies counted", ordered, all)
	}
	empty := &ReplySet{byRep: map[string]*pbft.Reply{}, readOnly: map[string]*pbft.Reply{}}
	if best, all := empty.ReadOnlyBest(); best.Replies != 0 || len(all) != 0 || best.From != nil {
		t.Fatalf("no replies: %+v %v", best, all)
	}
}
