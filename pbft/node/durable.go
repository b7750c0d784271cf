package node

import (
	"errors"
	"fmt"
	"slices"

	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/wal"
)

// ErrDataDir reports a data directory the replica cannot run from.
var ErrDataDir = errors.New("node: unusable data dir")

// openDurable opens the durable log in dir and restores the replica from it. A damaged
// log stops the replica: it never runs on state it cannot trust. An empty directory
// starts a fresh replica, which catches up from its peers (state transfer).
func (n *Node) openDurable(dir string) error {
	l, op, err := wal.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %s: %v (move it away to rebuild this replica from its peers)", ErrDataDir, dir, err)
	}
	records := make([]pbft.Message, 0, len(op.Records))
	for i, b := range op.Records {
		m, err := pbft.Unmarshal(b)
		if err != nil {
			l.Close()
			return fmt.Errorf("%w: %s: record %d does not decode: %v (move it away to rebuild this replica from its peers)", ErrDataDir, dir, i, err)
		}
		records = append(records, m)
	}
	// A new log means a first start (or a data dir moved away): there is nothing to
	// restore, nor a view in which this replica may have voted and forgotten it. Any
	// existing log is restored, even an empty one: a replica that crashed before its
	// first sync restarts as one that may have voted (pbft/durable.go).
	if !op.Created {
		if err := n.r.Restore(records); err != nil {
			l.Close()
			return fmt.Errorf("%w: %s: %v (move it away to rebuild this replica from its peers)", ErrDataDir, dir, err)
		}
	}
	// The log may put the replica in a later configuration than its NodeIDs; one that
	// starts at view 0 reports no view change, so follow it here.
	n.refreshMembers()
	if op.TornBytes > 0 {
		n.log.Warn("cut an incomplete last record off the durable log (a crash during a write)", "dir", dir, "bytes", op.TornBytes)
	}
	n.log.Info("durable log", "dir", dir, "new", op.Created, "records", len(records),
		"view", n.r.View(), "stable_checkpoint", n.r.StableCheckpoint(), "last_executed", n.r.LastExecuted())
	n.wal = l
	return nil
}

// heldReady is a Ready's messages (or another send, fn) waiting for the records up to
// gen to be durable.
type heldReady struct {
	gen   uint64
	msgs  []pbft.Outbound
	fault Fault // the behaviour when the replica produced them
	fn    func()
}

// durableState is the node's side of the asynchronous durable log (walwriter.go); only
// the node's goroutine touches it.
type durableState struct {
	writer *walWriter
	gen    uint64 // records handed to the writer, counted in Readies
	synced uint64 // the last gen the writer reported durable
	// barrier is the last gen with a record other than a PrePrepare or Commit (a view
	// change, a checkpoint, a compaction): what votes wait for (waitFor).
	barrier uint64
	// requested is the last gen the writer will sync without being asked: units of
	// pre-prepares alone are lazy (walwriter.go), so a wait for one asks (need).
	requested uint64
	held      []heldReady
	scratch   []heldReady
	// commits are this replica's commit records not yet durable, in the order handed out
	// (a compaction counts as one at number 0): what a reply waits for (replyGen).
	commits []pendingCommit
}

// pendingCommit is a commit record for number seq handed to the writer in Ready gen.
type pendingCommit struct{ seq, gen uint64 }

// startDurable starts the log's writer; Run calls it, so that a test can put a slower log
// in first.
func (n *Node) startDurable() {
	if n.wal == nil {
		return
	}
	n.dur.writer = startWALWriter(n.wal, func(gen uint64, err error) {
		n.inbox.push(item{fn: func() { n.durableAt(gen, err) }})
	})
	n.walCounts.Store(&n.dur.writer.counts)
}

// persist hands what rd asks to make durable to the writer. It reports whether rd's
// messages must wait (then it holds them): while any record handed out is not yet
// durable, a message waits for it, the records it depends on and, to keep the order
// the replica produced them in, the ones after. Two kinds go by what they depend on
// (waitFor): replies, so that under load a batch's answers do not wait for the records
// of the rounds begun meanwhile, and votes, which pbft/durable.go lets go before the
// pre-prepare and commit records (issue 19: a round then waits for one fsync, its
// commit's, instead of three).
func (n *Node) persist(rd *pbft.Ready, f Fault) bool {
	d := &n.dur
	if d.writer == nil {
		return false
	}
	if rd.Compact != nil || len(rd.Persist) > 0 {
		u := walUnit{compact: rd.Compact != nil}
		src := rd.Persist
		if u.compact {
			src = rd.Compact // Persist is then empty
		}
		d.gen++
		u.gen = d.gen
		if u.compact {
			// The whole durable state, the commits of every live number among it.
			d.commits = append(d.commits, pendingCommit{0, d.gen})
			d.barrier = d.gen
		}
		u.recs = make([][]byte, len(src))
		u.lazy = !u.compact
		for i, m := range src {
			u.recs[i] = pbft.Marshal(m)
			switch m := m.(type) {
			case *pbft.Commit:
				if !u.compact {
					d.commits = append(d.commits, pendingCommit{m.Seq, d.gen})
				}
				u.lazy = false
			case *pbft.PrePrepare:
			default:
				d.barrier = d.gen
				u.lazy = false
			}
		}
		if !u.lazy {
			d.requested = d.gen
		}
		d.writer.submit(u)
	}
	if d.synced == d.gen {
		return false
	}
	if len(rd.Messages) > 0 {
		n.hold(rd.Messages, f)
	}
	return true
}

// replyGen is the Ready whose records a reply for number seq depends on: the commits
// this replica recorded for seq and every number below it, whose execution the reply
// reports (a later pre-prepare or commit changes nothing it says). Execution without
// an own commit record (a number 2f+1 others proved committed, a state fetched from
// peers) is made durable by those peers: their commits and checkpoints are sent only
// once their own records are.
func (d *durableState) replyGen(seq uint64) uint64 {
	g := d.synced
	for _, c := range d.commits {
		if c.seq <= seq && c.gen > g {
			g = c.gen
		}
	}
	return g
}

// need makes sure the writer syncs the records up to gen: it asks for a sync if they
// end in lazy units (pre-prepares alone) that no later unit's sync will cover.
func (d *durableState) need(gen uint64) {
	if gen > d.requested {
		d.writer.submit(walUnit{gen: d.gen})
		d.requested = d.gen
	}
}

// waitFor is the Ready whose records (and every one before) m must wait for: every
// record handed out so far, except for replies (replyGen) and votes, which wait only
// for the records that put the replica in its view (barrier; pbft/durable.go says why
// that is safe).
func (d *durableState) waitFor(m pbft.Message) uint64 {
	switch m := m.(type) {
	case *pbft.Reply:
		return d.replyGen(m.Seq)
	case *pbft.PrePrepare, *pbft.Prepare:
		return d.barrier
	}
	return d.gen
}

// hold keeps msgs (one Ready's) until what they depend on is durable (waitFor); the
// ones that need nothing pending go at once.
func (n *Node) hold(msgs []pbft.Outbound, f Fault) {
	d := &n.dur
	first, uniform := uint64(0), true
	for i, o := range msgs {
		g := d.waitFor(o.Msg)
		if i == 0 {
			first = g
		} else if g != first {
			uniform = false
			break
		}
	}
	if uniform {
		if first <= d.synced {
			n.send(msgs, f)
		} else {
			d.need(first)
			d.held = append(d.held, heldReady{gen: first, msgs: msgs, fault: f})
		}
		return
	}
	// Split by what each message waits for; the pieces are new slices, since the
	// replica reuses msgs' array once it is recycled.
	var now []pbft.Outbound
	byGen := map[uint64][]pbft.Outbound{}
	var gens []uint64
	for _, o := range msgs {
		g := d.waitFor(o.Msg)
		if g <= d.synced {
			now = append(now, o)
			continue
		}
		if _, seen := byGen[g]; !seen {
			gens = append(gens, g)
		}
		byGen[g] = append(byGen[g], o)
	}
	slices.Sort(gens)
	for _, g := range gens {
		d.need(g)
		d.held = append(d.held, heldReady{gen: g, msgs: byGen[g], fault: f})
	}
	n.r.Recycle(msgs)
	if len(now) > 0 {
		n.send(now, f)
	}
}

// afterDurable runs send once every record handed to the writer so far is durable: at
// once if they are. Query answers go this way: they show the replica's state (a request
// ordered at a number, what it executed), which must not be seen before it would
// survive a crash.
func (n *Node) afterDurable(send func()) {
	d := &n.dur
	if d.writer == nil || d.synced == d.gen {
		send()
		return
	}
	d.need(d.gen)
	d.held = append(d.held, heldReady{gen: d.gen, fn: send})
}

// durableAt runs on the node's goroutine when the writer has made everything up to gen
// durable: it sends, in the order held, the messages that waited for it. Held messages
// are in order of gen except for replies and votes, which may wait for less than what
// came before them, so every entry is looked at.
func (n *Node) durableAt(gen uint64, err error) {
	d := &n.dur
	if err != nil {
		n.failed = fmt.Errorf("durable log: %w", err)
		return
	}
	d.synced = gen
	i := 0
	for ; i < len(d.commits) && d.commits[i].gen <= gen; i++ {
	}
	d.commits = append(d.commits[:0], d.commits[i:]...)
	// Keep the rest in a second buffer, so that neither grows for ever.
	d.scratch = d.scratch[:0]
	for _, h := range d.held {
		switch {
		case h.gen > gen:
			d.scratch = append(d.scratch, h)
		case h.fn != nil:
			h.fn()
		default:
			n.send(h.msgs, h.fault)
		}
	}
	clear(d.held)
	d.held, d.scratch = d.scratch, d.held[:0]
}

// closeDurable stops the writer (after the write in progress) and closes the log.
// Messages still held are dropped: they depend on records that may not be durable.
func (n *Node) closeDurable() {
	if n.dur.writer != nil {
		n.dur.writer.stop()
		n.dur.writer = nil
	}
	n.dur.held = nil
	if n.wal != nil {
		n.wal.Close()
		n.wal = nil
	}
}
