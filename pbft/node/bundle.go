package node

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pbft-nats/pbft/pbft"
)

// KindBundle carries the broadcasts of one Ready (a commit for k and a prepare for k+1,
// a commit and a checkpoint) in one bus message, sealed once: every delivery costs each
// receiver a socket read, the client library's parsing, a hand-off and a MAC check, and
// at n = 7 a round is 84 deliveries. Each inner message is a framed replica message
// (confwire.go), exactly what would have gone alone, and its receiver puts it through
// the checks it gets alone (handleReplica): the sender named in its configuration, its
// inner authenticators, the same rejection reasons under its own kind.
//
// Wire: uvarint count (2..maxBundled), then count times a uvarint length and that many
// bytes. A Ready with one broadcast sends it alone, as before.
const KindBundle = "bundle"

// maxBundled bounds the messages of one bundle, and maxBundleBytes its size, well under
// the bus's message limit; what does not fit goes in the next bundle.
const (
	maxBundled     = 64
	maxBundleBytes = 256 << 10
)

var errBundle = errors.New("node: bad bundle")

// EncodeBundle packs framed replica messages (Frame) into a KindBundle payload.
func EncodeBundle(inner [][]byte) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(inner)))
	for _, m := range inner {
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	return b
}

// DecodeBundle unpacks a KindBundle payload into its messages, subslices of b. It checks
// the layout only; each message is checked where it is handled.
func DecodeBundle(b []byte) ([][]byte, error) {
	count, k := binary.Uvarint(b)
	if k <= 0 || count < 2 || count > maxBundled {
		return nil, fmt.Errorf("%w: count", errBundle)
	}
	b = b[k:]
	out := make([][]byte, 0, count)
	for range count {
		size, k := binary.Uvarint(b)
		if k <= 0 || size == 0 || size > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: message %d of %d", errBundle, len(out), count)
		}
		out = append(out, b[k:k+int(size)])
		b = b[k+int(size):]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last message", errBundle, len(b))
	}
	return out, nil
}

// bundler is the node goroutine's scratch for the bundle of one Ready, reused.
type bundler struct {
	body []byte          // the framed messages, one after another
	ends []int           // where each ends in body
	outs []pbft.Outbound // the messages, for the counters and the trace
}

// bundles reports whether the broadcasts of msgs go in bundles: when there are at least
// two, and the node is honest (a fault's per-message forgeries take sendOut's path).
func bundles(msgs []pbft.Outbound, f Fault) bool {
	if f != FaultNone {
		return false
	}
	c := 0
	for _, o := range msgs {
		if o.To == pbft.Broadcast {
			if c++; c == 2 {
				return true
			}
		}
	}
	return false
}

// sendBundled broadcasts every broadcast of msgs, in order, in as few bundles as the
// bounds allow.
func (n *Node) sendBundled(msgs []pbft.Outbound) {
	b := &n.bundle
	for _, o := range msgs {
		if o.To != pbft.Broadcast {
			continue
		}
		n.sign(o.Msg)
		start := len(b.body)
		b.body = pbft.AppendMessage(appendFrameHeader(b.body, o.Conf), o.Msg)
		if len(b.ends) > 0 && (len(b.ends) == maxBundled || len(b.body) > maxBundleBytes) {
			// It does not fit: send what came before, and start again with it.
			one := append([]byte(nil), b.body[start:]...)
			b.body = b.body[:start]
			n.flushBundle()
			b.body = append(b.body, one...)
		}
		b.ends = append(b.ends, len(b.body))
		b.outs = append(b.outs, o)
	}
	n.flushBundle()
}

// flushBundle seals and broadcasts what the bundler holds (alone, under its own kind,
// if it is one message) and empties it.
func (n *Node) flushBundle() {
	b := &n.bundle
	if len(b.ends) == 0 {
		return
	}
	kind := KindBundle
	if len(b.ends) == 1 {
		kind = b.outs[0].Msg.Kind().String()
		n.wire = append(n.wire[:0], b.body...)
	} else {
		n.wire = binary.AppendUvarint(n.wire[:0], uint64(len(b.ends)))
		start := 0
		for _, end := range b.ends {
			n.wire = binary.AppendUvarint(n.wire, uint64(end-start))
			n.wire = append(n.wire, b.body[start:end]...)
			start = end
		}
	}
	n.env = n.keys.AppendSeal(n.env[:0], "", kind, n.wire)
	err := n.tr.Broadcast(kind, n.env)
	n.trimBuffers()
	if err != nil {
		n.log.Warn("send failed", "kind", kind, "messages", len(b.ends), "err", err)
	} else {
		if len(b.ends) > 1 {
			n.count(n.stats.Out, KindBundle)
		}
		for _, o := range b.outs {
			n.count(n.stats.Out, o.Msg.Kind().String())
			n.traceSent(o, o.Msg)
		}
	}
	clear(b.outs)
	b.outs, b.ends = b.outs[:0], b.ends[:0]
	if cap(b.body) > maxKeptBuffer {
		b.body = nil
	}
	b.body = b.body[:0]
}

// handleBundle steps each message of a bundle from sender as if it had come alone.
func (n *Node) handleBundle(sender string, payload []byte) {
	inner, err := DecodeBundle(payload)
	if err != nil {
		n.reject(RejectMalformed, sender, KindBundle, err)
		return
	}
	for _, m := range inner {
		n.handleReplica(sender, 0, m)
	}
}
