package node

import "github.com/pbft-nats/pbft/pbft"

// KindReplies carries several replies of one replica to one gateway in one bus message
// (pbft.KindReplies).
const KindReplies = pbft.KindReplies

// EncodeReplies packs replies for KindReplies (pbft.EncodeReplies).
func EncodeReplies(replies []*pbft.Reply) []byte { return pbft.EncodeReplies(replies) }

// DecodeReplies unpacks EncodeReplies (pbft.DecodeReplies).
func DecodeReplies(b []byte) ([]*pbft.Reply, error) { return pbft.DecodeReplies(b) }

// replyGroups collects one Ready's replies by gateway, in the order gateways first appear.
// The node keeps one and reuses it from Ready to Ready (reset), so grouping allocates
// nothing once its slices have grown.
type replyGroups struct {
	order []string
	by    map[string][]pbft.Outbound
	batch []*pbft.Reply // sendReplies' scratch
}

// maxKeptGateways bounds the gateways whose slices a replyGroups keeps between Readies.
const maxKeptGateways = 64

// reset empties g for the next Ready, keeping its buffers unless too many gateways came
// by (gateways come and go; their ids must not pile up).
func (g *replyGroups) reset() {
	if len(g.by) > maxKeptGateways {
		g.by = nil
	}
	for gw, outs := range g.by {
		clear(outs) // let the messages go
		g.by[gw] = outs[:0]
	}
	clear(g.order)
	g.order = g.order[:0]
	clear(g.batch)
	g.batch = g.batch[:0]
}

func (g *replyGroups) add(o pbft.Outbound) {
	if g.by == nil {
		g.by = make(map[string][]pbft.Outbound)
	}
	outs := g.by[o.Gateway]
	if len(outs) == 0 {
		g.order = append(g.order, o.Gateway)
	}
	g.by[o.Gateway] = append(outs, o)
}

// sendReplies sends each gateway its replies: alone as a reply, or together as replies.
func (n *Node) sendReplies(g *replyGroups, f Fault) {
	for _, gw := range g.order {
		outs := g.by[gw]
		if len(outs) == 1 {
			n.sendOut(outs[0], f)
			continue
		}
		batch := g.batch[:0]
		size := 0
		for _, o := range outs {
			r, ok := o.Msg.(*pbft.Reply)
			if !ok {
				n.sendOut(o, f)
				continue
			}
			if len(batch) > 0 && size+len(r.Result) > maxRepliesBytes {
				n.sendReplyBatch(gw, batch)
				batch, size = batch[:0], 0
			}
			batch = append(batch, r)
			size += len(r.Result)
			n.traceSent(o, o.Msg)
		}
		if len(batch) > 0 {
			n.sendReplyBatch(gw, batch)
		}
		g.batch = batch
	}
}

// maxRepliesBytes bounds the results in one replies message, well under the bus's
// message limit.
const maxRepliesBytes = 256 << 10

func (n *Node) sendReplyBatch(gw string, batch []*pbft.Reply) {
	n.wire = pbft.AppendReplies(n.wire[:0], batch)
	n.env = n.keys.AppendSeal(n.env[:0], gw, KindReplies, n.wire)
	err := n.tr.Send(gw, KindReplies, n.env)
	n.trimBuffers()
	if err != nil {
		n.log.Warn("send failed", "kind", KindReplies, "replies", len(batch), "err", err)
		return
	}
	n.statsMu.Lock()
	n.stats.Out[pbft.KindReply.String()] += uint64(len(batch))
	n.statsMu.Unlock()
}
