package node

// outbox holds the envelopes one Ready sends until all are sealed, so that they reach
// nats.go back to back: its flusher, woken by the first, then writes them together
// instead of racing the sealing of the next.
type outbox struct {
	buf   []byte
	items []outItem
}

type outItem struct {
	to, kind   string
	broadcast  bool
	start, end int
}

func (b *outbox) add(to, kind string, broadcast bool, env []byte) {
	start := len(b.buf)
	b.buf = append(b.buf, env...)
	b.items = append(b.items, outItem{to: to, kind: kind, broadcast: broadcast, start: start, end: len(b.buf)})
}

// release publishes what the outbox holds, in order.
func (n *Node) release() {
	b := &n.out
	for _, it := range b.items {
		env := b.buf[it.start:it.end]
		var err error
		if it.broadcast {
			err = n.tr.Broadcast(it.kind, env)
		} else {
			err = n.tr.Send(it.to, it.kind, env)
		}
		if err != nil {
			n.log.Warn("send failed", "kind", it.kind, "err", err)
		}
	}
	clear(b.items)
	b.items = b.items[:0]
	if cap(b.buf) > maxKeptBuffer {
		b.buf = nil
	}
	b.buf = b.buf[:0]
}
