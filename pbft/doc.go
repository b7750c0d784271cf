// Package pbft is the protocol core of Practical Byzantine Fault Tolerance (Castro &
// Liskov, OSDI '99 and TOCS 2002) as a deterministic state machine.
//
// A Replica takes messages (Step), clock ticks (Tick) and a cue to order what it has
// queued (Propose), and hands out what to send and what it executed (Ready). It does no
// I/O, reads no clock, draws no random numbers and starts no goroutines: the driver in
// package node owns the loop, and tests drive any interleaving and replay it exactly.
//
// The driver's loop, in the style of etcd's raft:
//
//	for {
//		select {
//		case m := <-inbox: r.Step(from, m)   // already authenticated
//		case <-ticker:     r.Tick()
//		}
//		r.Propose()                          // the primary batches what arrived together
//		rd := r.Ready()
//		persist(rd)                          // before anything is sent
//		send(rd.Messages)
//	}
//
// What the replica implements: the normal case (pre-prepare, prepare with 2f matching,
// commit with 2f+1 matching, execution in sequence order, replies, deduplication by
// client and timestamp with a replicated reply cache), checkpoints and watermarks with
// log truncation, state transfer checked against a certified digest, retransmission
// driven by periodic status messages (and, for a replica behind that cannot complete the
// normal case, catch-up from a quorum of its peers' commits: catchup.go), and view
// change with the P and Q sets of TOCS §4.5.
// Quorum sizes come from Quorum, for any n.
package pbft
