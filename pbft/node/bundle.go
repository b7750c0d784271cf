package node

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pbft-nats/pbft/pbft"
)

// KindBundle carries several protocol messages of one replica to one destination (a
// replica, or every replica) in one bus message, sealed once. A Ready that holds many
// messages for the same destination (a backup's prepares for a burst of pre-prepares, a
// primary's pre-prepares for a burst of requests) then costs one publish, one delivery
// per receiver and one MAC vector, not one of each per message: the bus's per-message
// cost, not the protocol's, is what a replica spends most on. The payload is a sequence
// of elements, each uvarint(len) then a framed message exactly as it would travel alone;
// a receiver steps them in order, each as if it had come alone. (A decoded element
// may alias the bundle's buffer, so a message the log keeps keeps its bundle, at most
// maxBundleBytes, alive as long: its neighbours are usually kept as long anyway.)
const KindBundle = "bundle"

const (
	// maxBundledMessage: a larger message (a view change, a state chunk) travels alone.
	maxBundledMessage = 16 << 10
	// maxBundleBytes bounds one bundle; a bus that takes less gets bundles of half its
	// message limit, which leaves the envelope's MAC vector room.
	maxBundleBytes = 256 << 10
	// maxGroups bounds the destinations one Ready is grouped by; messages for more go
	// alone, so a Ready for a very large membership costs no quadratic search.
	maxGroups = 64
)

// errBundle reports a bundle whose elements do not parse.
var errBundle = errors.New("malformed bundle")

// destination is where a replica-bound message goes: every replica, or one by id.
type destination struct {
	to        string
	broadcast bool
}

// destOf resolves where o goes; false if it names no replica (an index outside its
// configuration).
func (n *Node) destOf(o pbft.Outbound) (destination, bool) {
	switch {
	case o.Peer != "":
		return destination{to: o.Peer}, true
	case o.To == pbft.Broadcast:
		return destination{broadcast: true}, true
	}
	members := n.r.MembersOf(o.Conf)
	if o.To < 0 || o.To >= len(members) {
		return destination{}, false
	}
	return destination{to: members[o.To]}, true
}

// outGroups collects one Ready's replica-bound messages by destination, in the order
// destinations first appear. The node keeps one and reuses it (reset).
type outGroups struct {
	groups  []outGroup
	used    int
	most    int             // bytes in one bundle at most (limits)
	single  int             // the largest message bundled (limits)
	buf     []byte          // the bundle being built
	bundled []pbft.Outbound // the messages in buf
}

type outGroup struct {
	dest destination
	outs []pbft.Outbound
}

// limits sizes bundles to a bus that takes maxPayload bytes a message (0: no stated
// limit): a NATS server may take less than maxBundleBytes.
func (g *outGroups) limits(maxPayload int64) {
	g.most, g.single = maxBundleBytes, maxBundledMessage
	if half := int(min(maxPayload/2, maxBundleBytes)); half > 0 {
		g.most = half
		g.single = min(maxBundledMessage, half/2)
	}
}

// add puts o in d's group, false if d would be a group past maxGroups (o is then the
// caller's to send alone).
func (g *outGroups) add(d destination, o pbft.Outbound) bool {
	for i := range g.used {
		if g.groups[i].dest == d {
			g.groups[i].outs = append(g.groups[i].outs, o)
			return true
		}
	}
	if g.used == maxGroups {
		return false
	}
	if g.used == len(g.groups) {
		g.groups = append(g.groups, outGroup{})
	}
	grp := &g.groups[g.used]
	grp.dest, grp.outs = d, append(grp.outs[:0], o)
	g.used++
	return true
}

// reset empties g for the next Ready, letting go of the messages and of buffers grown
// past what the node keeps.
func (g *outGroups) reset() {
	for i := range g.used {
		clear(g.groups[i].outs)
		g.groups[i].outs = g.groups[i].outs[:0]
	}
	g.used = 0
	if cap(g.buf) > maxKeptBuffer {
		g.buf = nil
	}
}

// sendGroups sends each destination its messages: alone when it has one, else in
// bundles, with any message too large for one sent alone, in its place: what one
// destination gets keeps the Ready's order.
func (n *Node) sendGroups(g *outGroups) {
	for i := range g.used {
		grp := &g.groups[i]
		if len(grp.outs) == 1 {
			n.sendOut(grp.outs[0], FaultNone)
			continue
		}
		for _, o := range grp.outs {
			// wire, not n.wire, from here on: a publish may let go of n.wire's buffer.
			wire := n.appendFramed(n.wire[:0], o.Conf, o.Msg)
			n.wire = wire
			if len(wire) > g.single {
				n.sendBundle(grp.dest, g)
				n.sent(o, o.Msg, n.publish(grp.dest, o.Msg.Kind().String(), wire))
				continue
			}
			if len(g.buf)+binary.MaxVarintLen64+len(wire) > g.most {
				n.sendBundle(grp.dest, g)
			}
			g.buf = binary.AppendUvarint(g.buf, uint64(len(wire)))
			g.buf = append(g.buf, wire...)
			g.bundled = append(g.bundled, o)
		}
		n.sendBundle(grp.dest, g)
	}
}

// sendBundle publishes what g has gathered for d, if anything (a lone message as
// itself), and counts its messages as sent.
func (n *Node) sendBundle(d destination, g *outGroups) {
	switch len(g.bundled) {
	case 0:
		return
	case 1:
		o := g.bundled[0]
		_, k := binary.Uvarint(g.buf)
		n.sent(o, o.Msg, n.publish(d, o.Msg.Kind().String(), g.buf[k:]))
	default:
		if err := n.publish(d, KindBundle, g.buf); err != nil {
			n.log.Warn("send failed", "kind", KindBundle, "messages", len(g.bundled), "err", err)
		} else {
			for _, o := range g.bundled {
				n.sent(o, o.Msg, nil)
			}
		}
	}
	clear(g.bundled)
	g.bundled, g.buf = g.bundled[:0], g.buf[:0]
}

// handleBundle steps each message of an opened bundle from sender, in order.
func (n *Node) handleBundle(sender string, payload []byte) {
	err := SplitBundle(payload, func(elem []byte) { n.handleMessage(sender, "", 0, elem) })
	if err != nil {
		n.reject(RejectMalformed, sender, KindBundle, err)
	}
}

// SplitBundle calls fn with each element of a bundle's payload (a framed message, as
// StripFrame takes), in order, and fails at the first that does not parse (an empty
// bundle or element included); the elements before it have been handed over.
func SplitBundle(b []byte, fn func(elem []byte)) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty", errBundle)
	}
	for len(b) > 0 {
		size, k := binary.Uvarint(b)
		if k <= 0 || size == 0 || size > uint64(len(b)-k) {
			return fmt.Errorf("%w: element length at %d bytes from the end", errBundle, len(b))
		}
		end := k + int(size)
		fn(b[k:end])
		b = b[end:]
	}
	return nil
}

// orBundle names a message's kind in a rejection: the bus kind, or "bundle" for an
// element of one whose own kind is not known yet.
func orBundle(name string) string {
	if name == "" {
		return KindBundle
	}
	return name
}
