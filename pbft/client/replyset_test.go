package client

import (
	"maps"
	"slices"
	"testing"

	"github.com/pbft-nats/pbft/pbft"
)

func TestReplySetGroupsMatchingReplies(t *testing.T) {
	reply := func(seq, view uint64, result string) *pbft.Reply {
		return &pbft.Reply{Seq: seq, View: view, Result: []byte(result)}
	}
	cases := []struct {
		name    string
		replies map[string]*pbft.Reply
		quorum  int
		want    Result // From compared as a sorted list below
		members []string
		agreed  bool
	}{
		{
			name:    "none",
			replies: map[string]*pbft.Reply{},
			quorum:  2,
		},
		{
			name: "a liar and a laggard",
			replies: map[string]*pbft.Reply{
				"n1": reply(7, 0, "OK"), "n2": reply(7, 1, "OK"), "n3": reply(7, 0, "forged"), "n4": reply(8, 1, "OK"),
			},
			quorum:  2,
			want:    Result{Seq: 7, View: 1, Value: []byte("OK"), Replies: 2},
			members: []string{"n1", "n2"},
			agreed:  true,
		},
		{
			name:    "f+1 not reached",
			replies: map[string]*pbft.Reply{"n1": reply(3, 0, "a"), "n2": reply(3, 0, "b")},
			quorum:  2,
			want:    Result{Seq: 3, Value: []byte("a"), Replies: 1},
		},
		{
			name: "a tie goes to the lower sequence number",
			replies: map[string]*pbft.Reply{
				"n1": reply(9, 0, "x"), "n2": reply(9, 0, "x"), "n3": reply(4, 0, "y"), "n4": reply(4, 0, "y"),
			},
			quorum:  3,
			want:    Result{Seq: 4, Value: []byte("y"), Replies: 2},
			members: []string{"n3", "n4"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 20 { // map order varies between runs; the answer must not
				set := &ReplySet{}
				for from, r := range tc.replies {
					set.add(from, r)
				}
				best, all := set.Best()
				if best.Seq != tc.want.Seq || best.Replies != tc.want.Replies || best.View != tc.want.View {
					t.Fatalf("Best = seq %d view %d replies %d; want seq %d view %d replies %d",
						best.Seq, best.View, best.Replies, tc.want.Seq, tc.want.View, tc.want.Replies)
				}
				if best.Replies > 1 && string(best.Value) != string(tc.want.Value) {
					t.Fatalf("Best value %q, want %q", best.Value, tc.want.Value)
				}
				if tc.members != nil {
					if got := slices.Sorted(maps.Keys(best.From)); !slices.Equal(got, tc.members) {
						t.Fatalf("Best from %v, want %v", got, tc.members)
					}
				}
				if got, want := slices.Sorted(maps.Keys(all)), slices.Sorted(maps.Keys(tc.replies)); !slices.Equal(got, want) {
					t.Fatalf("all = %v, want %v", got, want)
				}
				agreed, ok := set.Agreed(tc.quorum)
				if ok != tc.agreed || ok && (agreed.Seq != tc.want.Seq || agreed.Replies != tc.want.Replies) {
					t.Fatalf("Agreed(%d) = %+v, %v; want agreed %v", tc.quorum, agreed, ok, tc.agreed)
				}
			}
		})
	}
}

// A replica's latest reply is its vote: an earlier one may answer another request
// under the same id (a late reply).
func TestReplySetCountsEachReplicasLatestReply(t *testing.T) {
	set := &ReplySet{}
	set.add("n1", &pbft.Reply{Seq: 1, Result: []byte("stale")})
	for _, from := range []string{"n1", "n2", "n3"} {
		set.add(from, &pbft.Reply{Seq: 1, Result: []byte("v")})
	}
	if best, ok := set.Agreed(3); !ok || string(best.Value) != "v" || best.Replies != 3 {
		t.Fatalf("Agreed(3) = %+v, %v; want v from n1, n2, n3", best, ok)
	}
}

// A conflict answer refuses one operation: a late one for an earlier request under the
// same id with another operation is not this request's answer (it made the retransmission
// of the first operation fail with error 22 now and then).
func TestReplySetIgnoresConflictAnswersToAnotherOperation(t *testing.T) {
	c := &Client{replies: map[replyKey]*ReplySet{}}
	set, ok := c.Watch("c1", 1, []byte("get x"))
	if !ok {
		t.Fatal("Watch refused a fresh id")
	}
	defer c.Unwatch("c1", 1)
	late := pbft.ConflictResultFor([]byte("set x=7"))
	for _, from := range []string{"n1", "n2", "n3"} {
		set.add(from, &pbft.Reply{Seq: 1, Result: late})
	}
	if best, all := set.Best(); best.Replies != 0 || len(all) != 0 {
		t.Fatalf("conflict answers to another operation were counted: %+v from %v", best, all)
	}
	own := pbft.ConflictResultFor([]byte("get x"))
	for _, from := range []string{"n1", "n2"} {
		set.add(from, &pbft.Reply{Seq: 1, Result: own})
	}
	best, ok := set.Agreed(2)
	if !ok || !isConflict(best, 2) {
		t.Fatalf("two conflict answers to this operation: %+v, %v; want a conflict", best, ok)
	}
}

// A watcher that needs three matching replies sleeps through the first two (nothing
// they say can decide), wakes at the third, and at any reply that replaces an earlier
// one (a vote may move between groups); one that asks for every reply shares the
// channel and is woken at the next.
func TestReplySetWakesAtQuorumOnlyWhenAQuorumIsPossible(t *testing.T) {
	reply := func(result string) *pbft.Reply { return &pbft.Reply{Seq: 1, Result: []byte(result)} }
	set := &ReplySet{}
	at3 := set.changedAt(3)
	set.add("n1", reply("v"))
	set.add("n2", reply("v"))
	if isClosed(at3) {
		t.Fatal("changedAt(3) closed at the second reply")
	}
	set.add("n3", reply("w"))
	if !isClosed(at3) {
		t.Fatal("changedAt(3) still open at the third reply")
	}

	at4 := set.changedAt(4)
	set.add("n3", reply("v")) // n3 changes its vote: 3 replies, but a new group
	if !isClosed(at4) {
		t.Fatal("changedAt(4) still open after a replica replaced its reply")
	}

	set = &ReplySet{}
	at3 = set.changedAt(3)
	any := set.Changed() // a second watcher wanting every reply: the same channel, closed sooner
	if any != at3 {
		t.Fatal("watchers of one set got different channels")
	}
	set.add("n1", reply("v"))
	if !isClosed(any) {
		t.Fatal("Changed() still open after a reply")
	}

	set = &ReplySet{}
	at3 = set.changedAt(3)
	set.add("n1", &pbft.Reply{Seq: 1, ReadOnly: true, Result: []byte("v")})
	if !isClosed(at3) {
		t.Fatal("changedAt(3) still open after a read-only reply (counted apart, by its own rule)")
	}
}

// The vote on a request's replies runs at every wake of its waiter: with n = 4 it
// allocates only the copy of the agreed value, not a slice per group.
func TestReplySetAgreedAllocatesOnlyTheValue(t *testing.T) {
	set := &ReplySet{}
	for i, from := range []string{"n1", "n2", "n3", "n4"} {
		set.add(from, &pbft.Reply{Seq: 1, Result: []byte{byte('a' + i%2)}})
	}
	if allocs := testing.AllocsPerRun(100, func() { set.Agreed(3) }); allocs > 1 {
		t.Fatalf("Agreed allocates %v times per call, want at most 1", allocs)
	}
}

// A waiter's look (agreedOrWake) either finds the quorum, with no channel made and the
// value copied out of the reply, or returns the channel that the reply completing a
// quorum closes; until then a look costs no allocation.
func TestReplySetAgreedOrWake(t *testing.T) {
	set := &ReplySet{}
	set.add("n1", &pbft.Reply{Seq: 1, Result: []byte("v")})
	_, ok, wake := set.agreedOrWake(3, 3)
	if ok || wake == nil {
		t.Fatalf("one reply: agreed %v, wake %v; want a channel to wait on", ok, wake)
	}
	if allocs := testing.AllocsPerRun(100, func() { set.agreedOrWake(3, 3) }); allocs != 0 {
		t.Fatalf("a look before the quorum allocates %v times, want 0", allocs)
	}
	set.add("n2", &pbft.Reply{Seq: 1, Result: []byte("w")})
	if isClosed(wake) {
		t.Fatal("woken at two replies, when three decide")
	}
	set.add("n3", &pbft.Reply{Seq: 1, Result: []byte("v")})
	if !isClosed(wake) {
		t.Fatal("not woken at the third reply")
	}
	if _, ok, wake = set.agreedOrWake(3, 3); ok || wake == nil || isClosed(wake) {
		t.Fatalf("v, w, v: agreed %v; want a new channel to wait on", ok)
	}
	last := &pbft.Reply{Seq: 1, Result: []byte("v")}
	set.add("n4", last)
	if !isClosed(wake) {
		t.Fatal("not woken at the fourth reply")
	}
	best, ok, again := set.agreedOrWake(3, 3)
	if !ok || again != nil || string(best.Value) != "v" || best.Replies != 3 {
		t.Fatalf("v, w, v, v: %+v, agreed %v, channel %v; want v from 3, no channel", best, ok, again)
	}
	last.Result[0] = 'x'
	if string(best.Value) != "v" {
		t.Fatalf("the agreed value is the reply's buffer: %q", best.Value)
	}
}
