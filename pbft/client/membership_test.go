package client

import (
	"testing"

	"github.com/pbft-nats/pbft/pbft"
)

// Replies of two configurations are never counted together: a quorum is of the members
// of the one configuration that sent them, in that configuration's size.
func TestRepliesCountInOneConfiguration(t *testing.T) {
	c := &Client{replies: map[replyKey]*ReplySet{}}
	c.mem.Store(newMembership(0, []string{"n1", "n2", "n3", "n4"}, nil))
	c.SetMembership(1, []string{"n1", "n2", "n3", "n4", "n5"}, nil)
	set, _ := c.Watch("c", 1, []byte("set x=1"))
	ok := []byte("OK")
	set.add("n1", &pbft.Reply{Seq: 2, Result: ok, Conf: 0})
	set.add("n2", &pbft.Reply{Seq: 2, Result: ok, Conf: 0})
	set.add("n3", &pbft.Reply{Seq: 2, Result: ok, Conf: 1})
	set.add("n5", &pbft.Reply{Seq: 2, Result: ok, Conf: 1})
	if best, agreed := set.Agreed(c.Accept()); agreed {
		t.Fatalf("2 + 2 replies of two configurations accepted: %+v", best)
	}
	set.add("n4", &pbft.Reply{Seq: 2, Result: ok, Conf: 0})
	best, agreed := set.Agreed(c.Accept())
	if !agreed || best.Conf != 0 || best.Replies != 3 {
		t.Fatalf("3 replies of configuration 0 (q = 3): %+v, %v", best, agreed)
	}
	// Read-only replies count only from the configuration in force.
	set.add("n1", &pbft.Reply{Result: ok, ReadOnly: true, Conf: 0})
	set.add("n2", &pbft.Reply{Result: ok, ReadOnly: true, Conf: 1})
	if ro, _ := set.ReadOnlyBest(); ro.Replies != 1 {
		t.Fatalf("read-only replies of configuration 0 counted: %+v", ro)
	}
}
