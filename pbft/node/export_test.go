package node

// DurableLog is what the node's log writer needs of a log, for tests that slow it down.
type DurableLog = durableLog

// WrapDurableLog replaces n's durable log by wrap(log); call it before Run.
func WrapDurableLog(n *Node, wrap func(DurableLog) DurableLog) { n.wal = wrap(n.wal) }

// Unframe strips the configuration frame from a replica-to-replica payload.
func Unframe(b []byte) []byte { _, _, rest, _ := unframe(b); return rest }
