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
	// Nor do they wake a reader or count as replied: three more of configuration 0 make
	// four matching replies, but only one of the configuration in force.
	for _, id := range []string{"n3", "n4", "n5"} {
		set.add(id, &pbft.Reply{Result: ok, ReadOnly: true, Conf: 0})
	}
	select {
	case <-set.ReadOnlyDone(c.quorum().Commit(), len(c.replicas())):
		t.Fatal("a reader woke on read-only replies of an older configuration")
	default:
	}
	if best, replied := set.ReadOnlyTally(); best != 1 || replied != 1 {
		t.Fatalf("tally %d matching of %d replied, want 1 of 1 (configuration 1 only)", best, replied)
	}
	set.add("n3", &pbft.Reply{Result: ok, ReadOnly: true, Conf: 1})
	set.add("n4", &pbft.Reply{Result: ok, ReadOnly: true, Conf: 1})
	set.add("n5", &pbft.Reply{Result: ok, ReadOnly: true, Conf: 1})
	select {
	case <-set.ReadOnlyDone(c.quorum().Commit(), len(c.replicas())):
	default:
		t.Fatal("four matching read-only replies of configuration 1 (q = 4) did not wake a reader")
	}
}
