package campaign

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/node"
)

// ForgedPrefix starts every value the colluding replicas make up for a read.
const ForgedPrefix = "forged-by-"

// Colluders are Byzantine replicas that hold their real keys and agree on a lie: for
// every request they see (sent to them, broadcast by the gateway, or in a primary's
// pre-prepare) they answer the gateway at once with the same made-up reply: "OK" for a
// write, ForgedPrefix+id-list for a read, under a sequence number of their choosing.
// They take no part in the protocol otherwise. f of them are harmless; so are f+1 (2 of
// 4), since the gateway accepts a result only at a quorum of matching replies (3 of 4):
// the honest replicas, too few to commit without them, stop making progress, and no
// forged value reaches a client, which is what the campaign's byzantine mode shows. The
// built-in behaviours (PBFT_FAULT=silent, equivocate) likewise only stop progress.
type Colluders struct {
	ids    []string
	conns  []*nats.Conn
	trs    []bus.Transport
	forged atomic.Uint64 // replies sent
}

// ColluderConfig says where and as whom the colluders join the bus.
type ColluderConfig struct {
	IDs      []string // colluding replica ids
	Replicas []string // every replica id, in order
	Cluster  string
	KeysDir  string
	// NATSURL gives each colluder's connection URL (with its credentials).
	NATSURL func(id string) string
}

// StartColluders connects one bus endpoint per colluding replica. Stop the real replica
// processes of those ids first.
func StartColluders(cfg ColluderConfig) (*Colluders, error) {
	c := &Colluders{ids: slices.Clone(cfg.IDs)}
	value := ForgedPrefix + strings.Join(cfg.IDs, "+")
	for _, id := range cfg.IDs {
		idx := slices.Index(cfg.Replicas, id)
		if idx < 0 {
			c.Stop()
			return nil, fmt.Errorf("campaign: colluder %s is not a replica of %v", id, cfg.Replicas)
		}
		keys, err := auth.LoadKeyring(cfg.KeysDir, id, cfg.Replicas, uint64(time.Now().UnixNano()))
		if err != nil {
			c.Stop()
			return nil, err
		}
		nc, err := bus.Connect(cfg.NATSURL(id), id)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.conns = append(c.conns, nc)
		var tr bus.Transport
		ready := make(chan struct{})
		tr, err = bus.NewNATS(nc, cfg.Cluster, id, bus.RoleReplica, func(m bus.Message) {
			<-ready
			c.handle(tr, keys, id, idx, value, m)
		})
		if err != nil {
			c.Stop()
			return nil, err
		}
		close(ready)
		c.trs = append(c.trs, tr)
	}
	for _, nc := range c.conns {
		if err := nc.Flush(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// Forged is how many forged replies the colluders sent.
func (c *Colluders) Forged() uint64 { return c.forged.Load() }

// Stop disconnects the colluders.
func (c *Colluders) Stop() {
	for _, tr := range c.trs {
		_ = tr.Close()
	}
	for _, nc := range c.conns {
		nc.Close()
	}
	c.trs, c.conns = nil, nil
}

func (c *Colluders) handle(tr bus.Transport, keys *auth.Keyring, id string, idx int, value string, m bus.Message) {
	data, err := keys.Open(m.From, m.Kind, m.Data)
	if err != nil {
		return
	}
	var reqs []*pbft.Request
	switch m.Kind {
	case node.KindQuery:
		q, err := node.DecodeQuery(data)
		if err != nil {
			return
		}
		a := &node.Answer{ID: q.ID, Replica: id}
		if q.Op == node.OpSubmit {
			if req := decodeRequest(q.Request); req != nil {
				a.Seq, a.Ordered = forgedSeq(req), true
				reqs = append(reqs, req)
			}
		}
		_ = tr.Send(m.From, node.KindAnswer, keys.Seal(m.From, node.KindAnswer, node.EncodeAnswer(a)))
	case pbft.KindRequest.String():
		if req := decodeRequest(data); req != nil {
			reqs = append(reqs, req)
		}
	case pbft.KindRequests:
		if batch, err := pbft.DecodeRequests(data); err == nil {
			reqs = append(reqs, batch...)
		}
	case pbft.KindPrePrepare.String():
		reqs = append(reqs, prePrepared(data)...)
	case node.KindBundle:
		// A replica's messages in one: its pre-prepares, and requests it forwards.
		_ = node.SplitBundle(data, func(e []byte) {
			if req := decodeRequest(e); req != nil {
				reqs = append(reqs, req)
			}
			reqs = append(reqs, prePrepared(e)...)
		})
	}
	for _, req := range reqs {
		result := []byte("OK")
		if strings.HasPrefix(string(req.Op), "get ") {
			result = []byte(value)
		}
		rep := &pbft.Reply{Seq: forgedSeq(req), Client: req.Client, Timestamp: req.Timestamp, Replica: idx, Result: result}
		kind := pbft.KindReply.String()
		if err := tr.Send(req.Gateway, kind, keys.Seal(req.Gateway, kind, pbft.Marshal(rep))); err == nil {
			c.forged.Add(1)
		}
	}
}

// prePrepared is the batch of a replica's framed message if it is a pre-prepare.
func prePrepared(b []byte) []*pbft.Request {
	msg, err := pbft.Unmarshal(node.StripFrame(b))
	if pp, ok := msg.(*pbft.PrePrepare); err == nil && ok {
		return pp.Batch
	}
	return nil
}

func decodeRequest(b []byte) *pbft.Request {
	msg, err := pbft.Unmarshal(node.StripFrame(b)) // forwarded by a replica, or bare from a client
	if err != nil {
		return nil
	}
	req, _ := msg.(*pbft.Request)
	return req
}

// forgedSeq is the sequence number the colluders agree on for req: far above anything
// the honest replicas assign, and the same for every colluder.
func forgedSeq(req *pbft.Request) uint64 { return 1<<40 + req.Timestamp%(1<<40) }
