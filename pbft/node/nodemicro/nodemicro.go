// Package nodemicro registers a replica with the NATS services framework (nats.go/micro)
// as pbft-replica, so that `nats micro ls|info|stats` find every replica of a cluster.
// Its one endpoint, status, answers the replica's view, primary, last executed and
// stable checkpoint as JSON on pbft.<cluster>.replica.<id>.status (bus.ReplicaStatusSubject,
// a subject no protocol subscription matches). The state is read between two events of
// the node's loop (Node.Do, the ordered inbox), so the loop never waits for NATS.
package nodemicro

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/node"
)

// ServiceName is the replicas' name in the NATS services framework.
const ServiceName = "pbft-replica"

// Version is the version of the status answer the framework shows.
const Version = "1.0.0"

// statusTimeout bounds how long an answer waits for the node's loop.
const statusTimeout = 2 * time.Second

// Status is the answer of the status endpoint.
type Status struct {
	Replica          string `json:"replica"`
	View             uint64 `json:"view"`
	Primary          string `json:"primary"`
	ViewActive       bool   `json:"view_active"`
	LastExecuted     uint64 `json:"last_executed"`
	StableCheckpoint uint64 `json:"stable_checkpoint"`
	Fault            string `json:"fault"`
}

// Register registers replica n of the cluster (replica ids ids, in order) on nc. Stop the
// returned service to leave; closing nc leaves too.
func Register(nc *nats.Conn, n *node.Node, cluster string, ids []string) (micro.Service, error) {
	subject, err := bus.ReplicaStatusSubject(cluster, n.ID())
	if err != nil {
		return nil, err
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        ServiceName,
		Version:     Version,
		Description: "PBFT replica " + n.ID() + ": its status (view, primary, last executed, stable checkpoint) on " + subject,
		Metadata:    map[string]string{"cluster": cluster, "replica": n.ID()},
	})
	if err != nil {
		return nil, err
	}
	status := func(req micro.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
		defer cancel()
		st := Status{Replica: n.ID(), Fault: string(n.Fault())}
		err := n.Do(ctx, func(r *pbft.Replica) {
			st.View, st.ViewActive = r.View(), r.ViewActive()
			st.LastExecuted, st.StableCheckpoint = r.LastExecuted(), r.StableCheckpoint()
			if p := r.Primary(); p >= 0 && p < len(ids) {
				st.Primary = ids[p]
			}
		})
		if err != nil {
			_ = req.Error("503", "replica "+n.ID()+" did not answer: "+err.Error(), nil)
			return
		}
		b, _ := json.Marshal(st)
		_ = req.Respond(b)
	}
	if err := svc.AddEndpoint("status", micro.HandlerFunc(status), micro.WithEndpointSubject(subject)); err != nil {
		_ = svc.Stop()
		return nil, err
	}
	// Once the server has the subscriptions, the replica is found and asked.
	if err := nc.Flush(); err != nil {
		_ = svc.Stop()
		return nil, err
	}
	return svc, nil
}
