package node

import (
	"encoding/binary"
	"errors"
	"slices"

	"github.com/pbft-nats/pbft/bus/auth"
)

// Replica-to-replica messages travel with their configuration: a mark byte, the
// configuration number, then the message. The envelope's MAC covers all of it, so the
// configuration is authenticated like the message. The mark is no message kind, so a
// client's request (sent bare) is told apart. Replies to gateways carry their
// configuration inside (pbft.Reply.Conf) and go bare.
const confMark = 0xC0

var errFrame = errors.New("node: bad configuration frame")

// Frame is what a replica sends: payload (a marshalled message) with its configuration.
func Frame(conf uint64, payload []byte) []byte { return frame(conf, payload) }

func frame(conf uint64, payload []byte) []byte {
	b := appendFrameHeader(make([]byte, 0, len(payload)+1+binary.MaxVarintLen64), conf)
	return append(b, payload...)
}

// appendFrameHeader appends the mark and the configuration a framed message starts with.
func appendFrameHeader(b []byte, conf uint64) []byte {
	b = append(b, confMark)
	return binary.AppendUvarint(b, conf)
}

// unframe splits a framed payload; framed is false for a bare one (a client's request).
func unframe(b []byte) (conf uint64, framed bool, rest []byte, err error) {
	if len(b) == 0 || b[0] != confMark {
		return 0, false, b, nil
	}
	conf, k := binary.Uvarint(b[1:])
	if k <= 0 {
		return 0, true, nil, errFrame
	}
	return conf, true, b[1+k:], nil
}

// refreshMembers follows the replica's configuration after it switched.
func (n *Node) refreshMembers() {
	ids := n.r.Members()
	if ids == nil || slices.Equal(ids, n.ids) {
		return
	}
	n.ids = ids
	n.index = make(map[string]int, len(ids))
	for i, id := range ids {
		n.index[id] = i
	}
	n.self = n.index[n.cfg.ID]
	if !n.r.IsMember() {
		n.self = -1
	}
	n.log.Info("configuration", "configuration", n.r.Configuration(), "members", ids, "member", n.r.IsMember())
}

// StripFrame returns the message inside a replica's payload (framed or bare), for tools
// that watch the bus; nil if the frame is malformed.
func StripFrame(b []byte) []byte {
	_, _, rest, err := unframe(b)
	if err != nil {
		return nil
	}
	return rest
}

// SetKeys replaces the node's keyring (the embedded cluster's, grown with the keys of
// replicas that join); it takes effect in the node's loop, between two messages.
func (n *Node) SetKeys(k *auth.Keyring) { n.inbox.push(item{fn: func() { n.keys = k }}) }
