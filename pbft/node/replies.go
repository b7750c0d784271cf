package node

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pbft-nats/pbft/pbft"
)

// KindReplies carries several replies of one replica to one gateway in one bus message:
// the replies of a batch to the gateway that sent its requests. A reply is small and a
// batch may hold hundreds, so one envelope (one MAC, one NATS message) per batch instead
// of one per request is most of what a replica sends at high load.
const KindReplies = "replies"

// maxRepliesPerMessage bounds what a decoder accepts.
const maxRepliesPerMessage = 1 << 16

// EncodeReplies packs replies as a count, then each reply's wire encoding with its length.
func EncodeReplies(replies []*pbft.Reply) []byte {
	b := binary.AppendUvarint(nil, uint64(len(replies)))
	var one []byte
	for _, r := range replies {
		one = pbft.AppendMessage(one[:0], r)
		b = binary.AppendUvarint(b, uint64(len(one)))
		b = append(b, one...)
	}
	return b
}

// DecodeReplies unpacks EncodeReplies.
func DecodeReplies(b []byte) ([]*pbft.Reply, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > maxRepliesPerMessage {
		return nil, errors.New("node: bad replies count")
	}
	b = b[k:]
	out := make([]*pbft.Reply, 0, min(n, uint64(len(b))))
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, fmt.Errorf("node: reply %d cut short", i)
		}
		m, err := pbft.Unmarshal(b[k : k+int(l)])
		if err != nil {
			return nil, err
		}
		r, ok := m.(*pbft.Reply)
		if !ok {
			return nil, fmt.Errorf("node: %s among replies", m.Kind())
		}
		out = append(out, r)
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, errors.New("node: trailing bytes after replies")
	}
	return out, nil
}

// replyGroups collects one Ready's replies by gateway, in the order gateways first appear.
type replyGroups struct {
	order []string
	by    map[string][]pbft.Outbound
}

func (g *replyGroups) add(o pbft.Outbound) {
	if g.by == nil {
		g.by = make(map[string][]pbft.Outbound)
	}
	if _, ok := g.by[o.Gateway]; !ok {
		g.order = append(g.order, o.Gateway)
	}
	g.by[o.Gateway] = append(g.by[o.Gateway], o)
}

// sendReplies sends each gateway its replies: alone as a reply, or together as replies.
func (n *Node) sendReplies(g *replyGroups, f Fault) {
	for _, gw := range g.order {
		outs := g.by[gw]
		if len(outs) == 1 {
			n.sendOut(outs[0], f)
			continue
		}
		batch := make([]*pbft.Reply, 0, len(outs))
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
	}
}

// maxRepliesBytes bounds the results in one replies message, well under the bus's
// message limit.
const maxRepliesBytes = 256 << 10

func (n *Node) sendReplyBatch(gw string, batch []*pbft.Reply) {
	if err := n.tr.Send(gw, KindReplies, n.keys.Seal(gw, KindReplies, EncodeReplies(batch))); err != nil {
		n.log.Warn("send failed", "kind", KindReplies, "replies", len(batch), "err", err)
		return
	}
	n.statsMu.Lock()
	n.stats.Out[pbft.KindReply.String()] += uint64(len(batch))
	n.statsMu.Unlock()
}
