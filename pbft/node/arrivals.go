package node

import "github.com/pbft-nats/pbft/bus"

// maxArrivals bounds how many bus arrivals one loop iteration takes before it proposes
// and flushes, so that a flood does not hold back ticks and the replica's output.
const maxArrivals = 1024

// arrivals is the transport's inbound queue when the node reads it itself (bus.Puller):
// nats.go's read loop then wakes the node goroutine directly, instead of a transport
// goroutine that wakes it through the inbox. The zero value (a transport without one,
// or before Run) never delivers.
type arrivals struct {
	q     bus.Arrivals
	batch []bus.Message // reused between iterations
}

// pull takes the transport's arrivals when it offers them. Until then (and for a
// transport that does not), messages come through receive and the inbox.
func (n *Node) pull() {
	p, ok := n.tr.(bus.Puller)
	if !ok {
		return
	}
	q, err := p.Pull()
	if err != nil {
		n.log.Debug("transport arrivals stay with its handler", "err", err)
		return
	}
	n.arr.q = q
}

// handleArrivals handles what one wake-up found queued: the burst then shares one
// proposal and one flush, as a drained inbox does.
func (n *Node) handleArrivals(batch []bus.Message) {
	for i := range batch {
		it := item{msg: batch[i]}
		n.handle(&it)
		batch[i] = bus.Message{} // let the payload be collected once handled
	}
	if cap(batch) > maxArrivals {
		batch = nil
	}
	n.arr.batch = batch[:0]
}
