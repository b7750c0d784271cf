package campaign

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	pbftclient "github.com/pbft-nats/pbft/pbft/client"
	"github.com/pbft-nats/pbft/pbft/node"
)

// ReplicaDigest is one replica's answer to an OpInfo query with Digest set.
type ReplicaDigest struct {
	Replica      string `json:"replica"`
	LastExecuted uint64 `json:"last_executed"`
	View         uint64 `json:"view"`
	Digest       string `json:"state_digest,omitempty"`
	Error        string `json:"error,omitempty"`
}

// DigestSource asks every replica of members (the final configuration's) for its state
// digest.
type DigestSource func(ctx context.Context, members []string) []ReplicaDigest

// QueryDigests joins the bus as client (whose key pair is in keysDir) and asks each
// replica directly for an OpInfo answer with its state digest. It must run after the
// gateway of the same identity is done: its replay counters start above the gateway's,
// so the replicas would drop the gateway's later messages as replays.
func QueryDigests(ctx context.Context, natsURL, cluster, keysDir, client string, replicas []string) []ReplicaDigest {
	out := make([]ReplicaDigest, len(replicas))
	for i, id := range replicas {
		out[i].Replica = id
	}
	fail := func(err error) []ReplicaDigest {
		for i := range out {
			out[i].Error = err.Error()
		}
		return out
	}
	keys, err := auth.LoadKeyring(keysDir, client, replicas, uint64(time.Now().UnixNano()))
	if err != nil {
		return fail(err)
	}
	nc, err := bus.Connect(natsURL, client+"-digests")
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	c, err := pbftclient.New(pbftclient.Config{Keys: keys, Connect: func(h bus.Handler) (bus.Transport, error) {
		return bus.NewNATS(nc, cluster, client, bus.RoleClient, h)
	}})
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	for i, id := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			a, err := c.Query(qctx, id, &node.Query{Op: node.OpInfo, Digest: true, WaitMillis: 1000})
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].LastExecuted, out[i].View, out[i].Digest = a.LastExecuted, a.View, a.StateDigest
			if a.StateDigest == "" {
				out[i].Error = "no state digest in the answer"
			}
		}()
	}
	wg.Wait()
	return out
}

// compareDigests reports whether every replica answered with the same digest at the
// same last executed number, and how they differ if not.
func compareDigests(ds []ReplicaDigest) (bool, string) {
	if len(ds) == 0 {
		return false, "no digests"
	}
	groups := map[string][]string{}
	var order []string
	for _, d := range ds {
		k := fmt.Sprintf("last_executed %d digest %.16s", d.LastExecuted, d.Digest)
		if d.Error != "" || d.Digest == "" {
			k = "no digest (" + d.Error + ")"
		}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], d.Replica)
	}
	if len(groups) == 1 && ds[0].Digest != "" && ds[0].Error == "" {
		return true, fmt.Sprintf("all %d replicas: %s", len(ds), order[0])
	}
	s := ""
	for i, k := range order {
		if i > 0 {
			s += "; "
		}
		s += fmt.Sprintf("%v: %s", groups[k], k)
	}
	return false, s
}
