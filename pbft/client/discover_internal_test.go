package client

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
)

// Discover takes the word of f+1 members that left (NotMember, naming the configuration
// that replaced theirs, which does not include them): a client whose members were all
// replaced still finds the new ones. Answers that name a list including their sender (a
// replica waiting to join reports the list it was given) count for nothing, however
// many agree.
func TestDiscoverCountsLeaversButNotJoiners(t *testing.T) {
	old := []string{"r1", "r2", "r3", "r4"}
	next := []string{"r5", "r6", "r7", "r8"}
	for _, c := range []struct {
		name    string
		members func(id string) []string // what r1 and r2 answer; r3 and r4 stay silent
		want    bool
	}{
		{"leavers", func(string) []string { return next }, true},
		{"joiners", func(id string) []string { return append(slices.Clone(next), id) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			keys, err := auth.GenerateKeyrings(append([]string{"gw"}, append(slices.Clone(old), next...)...), old, 1)
			if err != nil {
				t.Fatal(err)
			}
			hub := bus.NewHub("test")
			defer hub.Close()
			for _, id := range old[:2] {
				var tr *bus.MemTransport
				tr, err = hub.Join(id, bus.RoleReplica, func(m bus.Message) {
					data, err := keys[id].Open(m.From, m.Kind, m.Data)
					if err != nil || m.Kind != pbft.KindQuery {
						return
					}
					q, err := pbft.DecodeQuery(data)
					if err != nil || q.Op != pbft.OpInfo {
						return
					}
					a := &pbft.Answer{ID: q.ID, Replica: id, Configuration: 1, Members: c.members(id), NotMember: true}
					_ = tr.Send("gw", pbft.KindAnswer, keys[id].Seal("gw", pbft.KindAnswer, pbft.EncodeAnswer(a)))
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			cl, err := New(Config{Keys: keys["gw"], Replicas: old, Timeout: 500 * time.Millisecond, Retransmit: time.Hour,
				Connect: func(h bus.Handler) (bus.Transport, error) { return hub.Join("gw", bus.RoleClient, h) }})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			m, err := cl.Discover(context.Background())
			conf, members := cl.Configuration()
			if !c.want {
				if err == nil || conf != 0 || !slices.Equal(members, old) {
					t.Fatalf("Discover = %v, %v; following %d %v: want no configuration found, still 0 %v", m, err, conf, members, old)
				}
				return
			}
			if err != nil || m.Conf != 1 || !slices.Equal(m.Members, next) || conf != 1 || !slices.Equal(members, next) {
				t.Fatalf("Discover = %v, %v; following %d %v: want configuration 1 %v", m, err, conf, members, next)
			}
		})
	}
}
