package campaign

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pbft-nats/pbft/internal/topology"
	"github.com/pbft-nats/pbft/pbft"
	pbftclient "github.com/pbft-nats/pbft/pbft/client"
)

// noProgressTries is how often Reconfigure asks for a change the administrator's client
// refused before sending it (pbft.ErrNoProgress), noProgressPause apart: its probe gives
// each new member a second to answer, which a joiner just started on a loaded machine
// can miss, and so can every member at once (seen at load 23 on 2 cores with 6
// replicas: 0 and 1 of 5 answered), and the refusal changed nothing, so asking again is
// safe. At most about 20 s, within the nemesis's ReconfigTimeout.
const (
	noProgressTries = 10
	noProgressPause = time.Second
)

// AdminID is the campaign's administrator: the identity its replicas obey
// (PBFT_ADMIN_ID), whose client issues the nemesis's reconfigurations.
const AdminID = "admin"

// reconfigTopology is the topology with the administrator's client: the Cluster the
// nemesis reconfigures.
type reconfigTopology struct {
	*topology.Topology
	logf func(format string, args ...any)

	mu    sync.Mutex
	admin *pbftclient.Client // connected at the first reconfiguration
}

var _ Reconfigurable = (*reconfigTopology)(nil)

// StartJoiner adds a replica with a fresh key and an empty data dir, starts it to join
// next and waits until it awaits its admission.
func (t *reconfigTopology) StartJoiner(ctx context.Context, id string, next []string) error {
	if err := t.AddJoiner(ctx, id, next); err != nil {
		return err
	}
	if err := t.StartReplica(id); err != nil {
		return err
	}
	return t.WaitJoinerWaiting(ctx, id)
}

// Reconfigure has the administrator's client change the membership to next
// (client.Reconfigure learns the configuration in force first). After an error it asks
// the replicas which configuration is in force, since the change may have been executed
// all the same.
func (t *reconfigTopology) Reconfigure(ctx context.Context, next []string) (uint64, []string, error) {
	c, err := t.adminClient(ctx)
	if err != nil {
		return 0, nil, err
	}
	res, err := c.Reconfigure(ctx, pbftclient.Request{Client: AdminID, Timestamp: uint64(time.Now().UnixNano())}, next)
	for try := 1; try < noProgressTries && errors.Is(err, pbft.ErrNoProgress); try++ {
		t.logf("campaign: reconfigure to %v: %v; again in %v", next, err, noProgressPause)
		if !wait(ctx, noProgressPause) {
			break
		}
		res, err = c.Reconfigure(ctx, pbftclient.Request{Client: AdminID, Timestamp: uint64(time.Now().UnixNano())}, next)
	}
	if err != nil {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m, derr := c.Discover(dctx)
		if derr != nil {
			return 0, nil, fmt.Errorf("reconfigure to %v: %w (and the configuration in force is unknown: %v)", next, err, derr)
		}
		return m.Conf, m.Members, fmt.Errorf("reconfigure to %v: %w (configuration %d %v in force)", next, err, m.Conf, m.Members)
	}
	m := res.Membership
	t.logf("campaign: configuration %d %v ordered at %d, agreed by %d; running it: %v", m.Conf, m.Members, res.Seq, res.Replies, res.Installed)
	return m.Conf, slices.Clone(m.Members), nil
}

func (t *reconfigTopology) adminClient(ctx context.Context) (*pbftclient.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.admin != nil {
		return t.admin, nil
	}
	c, err := pbftclient.Connect(ctx, pbftclient.Options{NATSURL: t.NATSURL(AdminID), Cluster: "pbft", ID: AdminID,
		KeysDir: t.KeysDir(), Replicas: t.Replicas(), Timeout: 20 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("campaign: the administrator's client: %w", err)
	}
	t.admin = c
	return c, nil
}

// FollowMembership restarts the gateway with the new PBFT_NODE_IDS: a running gateway
// follows a reconfiguration made elsewhere only within about a second, and a request it
// sends before that carries no tag for a joiner (README, Changing the membership).
func (t *reconfigTopology) FollowMembership(ctx context.Context, members []string) error {
	return t.RestartGateway(ctx, members)
}

// RetireReplica kills a replica that left; its data dir stays, unused.
func (t *reconfigTopology) RetireReplica(id string) error {
	if !t.ReplicaRunning(id) {
		return nil
	}
	return t.KillReplica(id)
}

// closeAdmin closes the administrator's client (the topology is closed by its owner).
func (t *reconfigTopology) closeAdmin() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.admin != nil {
		t.admin.Close()
	}
}
