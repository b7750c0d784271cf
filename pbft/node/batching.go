package node

import "time"

// batchTimer is the primary's batch timeout: armed when requests wait for a batch to
// fill, it fires at most once per BatchTimeout.
type batchTimer struct {
	t       *time.Timer
	armed   bool
	expired bool
}

func (b *batchTimer) C() <-chan time.Time {
	if b.t == nil || !b.armed {
		return nil
	}
	return b.t.C
}

func (b *batchTimer) arm(d time.Duration) {
	if b.armed {
		return
	}
	if b.t == nil {
		b.t = time.NewTimer(d)
	} else {
		b.t.Reset(d)
	}
	b.armed = true
}

func (b *batchTimer) fired() { b.armed, b.expired = false, true }

func (b *batchTimer) stop() {
	if b.t != nil {
		b.t.Stop()
	}
}

// propose orders the primary's queued requests when proposeNow says so, and notes the
// batches that were in flight when it did order some (not when the watermarks, a
// reconfiguration's barrier or being a backup left them queued).
func (n *Node) propose(b *batchTimer) {
	if !n.proposeNow(b) {
		return
	}
	_, before := n.r.Backlog()
	n.r.Propose()
	if _, after := n.r.Backlog(); after > before {
		n.metrics.noteProposal(before)
	}
}

// proposeNow decides whether the primary orders its queued requests now. Without a
// batch timeout it always does (a batch per burst of input). With one, it orders at once
// when nothing it ordered is still executing and too few clients are on their way back
// to be worth waiting for (pbft's Returning), so a lone request waits for nothing;
// otherwise it waits for a full batch or the timeout: under load that fills batches,
// which is what turns the protocol's fixed cost per round into throughput.
func (n *Node) proposeNow(b *batchTimer) bool {
	d := n.cfg.BatchTimeout
	if d <= 0 {
		return true
	}
	pending, inflight := n.r.Backlog()
	if pending == 0 {
		return false
	}
	if cutNow(pending, n.cfg.Protocol.BatchMax, inflight, n.r.Returning(), b.expired) {
		b.expired = false
		return true
	}
	b.arm(d)
	return false
}

// cutNow is proposeNow's rule for pending (> 0) queued requests: a full batch, the
// timeout, or nothing in flight and too few clients coming back to grow the batch by
// half.
func cutNow(pending, batchMax int, inflight uint64, returning int, expired bool) bool {
	return pending >= batchMax || expired || (inflight == 0 && 2*returning <= pending)
}
