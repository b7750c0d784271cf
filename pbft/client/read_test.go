package client

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
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
	s := &ReplySet{}
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
	empty := &ReplySet{}
	if best, all := empty.ReadOnlyBest(); best.Replies != 0 || len(all) != 0 || best.From != nil {
		t.Fatalf("no replies: %+v %v", best, all)
	}
}

// The incremental grouping agrees with pbft.AcceptReplies over each replica's latest
// read-only reply, whatever the order and however often replicas change their reply.
func TestReadOnlyTallyMatchesAcceptReplies(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	froms := []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7"}
	values := []string{"", "a", "b", "c"}
	for run := range 500 {
		s := &ReplySet{}
		latest := map[string]*pbft.Reply{}
		for range rng.IntN(20) {
			from := froms[rng.IntN(len(froms))]
			r := &pbft.Reply{Seq: rng.Uint64N(5), View: rng.Uint64N(3), Result: []byte(values[rng.IntN(len(values))]), ReadOnly: true}
			s.add(from, r)
			latest[from] = r
			var reps []*pbft.Reply
			for i, f := range froms {
				if r := latest[f]; r != nil {
					c := *r
					c.Replica = i
					reps = append(reps, &c)
				}
			}
			value, agreeing, _ := pbft.AcceptReplies(reps, true, 1)
			best, replied := s.ReadOnlyTally()
			full, all := s.ReadOnlyBest()
			if r := s.ReadOnlyResult(); r.Replies != full.Replies || string(r.Value) != string(full.Value) || r.Seq != full.Seq || r.View != full.View || r.From != nil {
				t.Fatalf("run %d: ReadOnlyResult %+v, ReadOnlyBest %+v", run, r, full)
			}
			if best != agreeing || replied != len(latest) || len(all) != len(latest) ||
				full.Replies != agreeing || string(full.Value) != string(value) || len(full.From) != agreeing {
				t.Fatalf("run %d: tally %d of %d, best %+v; AcceptReplies %q at %d of %d", run, best, replied, full, value, agreeing, len(latest))
			}
		}
		if len(s.ro.groups) > len(latest) {
			t.Fatalf("run %d: %d groups for %d replies", run, len(s.ro.groups), len(latest))
		}
	}
}

// A reader waiting for q = 3 matching read-only replies of 4 wakes when the third
// matching one arrives, or when the fourth replica replied without a match; not before.
func TestReadOnlyDoneWakesOnceDecided(t *testing.T) {
	ro := func(result string) *pbft.Reply { return &pbft.Reply{Result: []byte(result), ReadOnly: true} }
	s := &ReplySet{}
	done := s.ReadOnlyDone(3, 4)
	for i, step := range []struct {
		from, result string
		want         bool
	}{{"n1", "v", false}, {"n2", "old", false}, {"n2", "v", false}, {"n3", "v", true}} {
		s.add(step.from, ro(step.result))
		if isClosed(done) != step.want {
			t.Fatalf("step %d (%s %q): done %v, want %v", i, step.from, step.result, !step.want, step.want)
		}
	}
	if !isClosed(s.ReadOnlyDone(3, 4)) {
		t.Fatal("a reader arriving after the quorum waits")
	}
	s = &ReplySet{}
	done = s.ReadOnlyDone(3, 4)
	for i, r := range []string{"a", "b", "a", "b"} {
		if isClosed(done) {
			t.Fatalf("done after %d split replies", i)
		}
		s.add(fmt.Sprintf("n%d", i+1), ro(r))
	}
	if !isClosed(done) || len(s.ro.waiters) != 0 {
		t.Fatalf("every replica replied: done %v, %d waiters left", isClosed(done), len(s.ro.waiters))
	}
}

// A reader waits on a channel it reuses (awaitReadOnly): woken at q matching replies, or
// at its expiry with too few, it leaves no waiter behind and no wake in the channel.
func TestAwaitReadOnlyLeavesNothingBehind(t *testing.T) {
	c := &Client{replies: map[replyKey]*ReplySet{}}
	c.mem.Store(newMembership(0, []string{"n1", "n2", "n3", "n4"}, nil))
	ro := func(result string) *pbft.Reply { return &pbft.Reply{Result: []byte(result), ReadOnly: true} }
	expired := make(chan struct{})
	close(expired)

	s := &ReplySet{owner: c}
	s.add("n1", ro("v"))
	s.add("n2", ro("v"))
	best, agreed := c.awaitReadOnly(context.Background(), s, expired)
	if agreed || best.Replies != 2 || len(s.ro.waiters) != 0 {
		t.Fatalf("expired with 2 of 3: %+v agreed %v, %d waiters left", best, agreed, len(s.ro.waiters))
	}
	s.add("n3", ro("v")) // the quorum after the reader left: nobody to wake
	best, agreed = c.awaitReadOnly(context.Background(), s, nil)
	if !agreed || best.Replies != 3 || string(best.Value) != "v" || len(s.ro.waiters) != 0 {
		t.Fatalf("3 matching: %+v agreed %v, %d waiters left", best, agreed, len(s.ro.waiters))
	}
	ch := wakeChans.Get().(chan struct{})
	if len(ch) != 0 {
		t.Fatal("a reused wake channel holds a wake")
	}
	wakeChans.Put(ch)
}
