package node

import (
	"errors"
	"fmt"

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
	if err := n.r.Restore(records); err != nil {
		l.Close()
		return fmt.Errorf("%w: %s: %v (move it away to rebuild this replica from its peers)", ErrDataDir, dir, err)
	}
	if op.TornBytes > 0 {
		n.log.Warn("cut an incomplete last record off the durable log (a crash during a write)", "dir", dir, "bytes", op.TornBytes)
	}
	n.log.Info("durable log", "dir", dir, "new", op.Created, "records", len(records),
		"view", n.r.View(), "stable_checkpoint", n.r.StableCheckpoint(), "last_executed", n.r.LastExecuted())
	n.wal = l
	return nil
}

// persist makes what rd asks durable before anything of rd is sent.
func (n *Node) persist(rd *pbft.Ready) error {
	if n.wal == nil || (rd.Compact == nil && len(rd.Persist) == 0) {
		return nil
	}
	if rd.Compact != nil {
		recs := make([][]byte, len(rd.Compact))
		for i, m := range rd.Compact {
			recs[i] = pbft.Marshal(m)
		}
		if err := n.wal.Rewrite(recs...); err != nil {
			return fmt.Errorf("durable log: %w", err)
		}
	}
	if len(rd.Persist) > 0 {
		recs := make([][]byte, len(rd.Persist))
		for i, m := range rd.Persist {
			recs[i] = pbft.Marshal(m)
		}
		if err := n.wal.Append(recs...); err != nil {
			return fmt.Errorf("durable log: %w", err)
		}
		if err := n.wal.Sync(); err != nil {
			return fmt.Errorf("durable log: %w", err)
		}
	}
	return nil
}

func (n *Node) closeDurable() {
	if n.wal != nil {
		n.wal.Close()
		n.wal = nil
	}
}
