// Package kv is the replicated application of the PBFT cluster: a small
// deterministic key-value state machine.
//
// Every replica runs its own Store and applies the same committed operations
// in the same order. Because Execute depends only on the current state and the
// operation bytes (no clocks, randomness, map iteration order or environment),
// replicas that executed identical operation sequences return identical
// results and report identical Digests, which is what checkpoints compare.
//
// Operations are opaque bytes to the protocol. The store understands
//
//	set K=V   -> "OK"
//	get K     -> the value, or Absent if K is not set ("" is a value)
//	del K     -> "OK" (also when K is absent)
//
// Anything else yields a result starting with "error: " and leaves the state
// unchanged; a bad operation is the client's problem, not the replica's, so it
// must still produce the same deterministic result everywhere.
//
// get is read-only (IsReadOnly): replicas may execute it outside the order, for
// PBFT's read-only optimisation, since it never changes the store.
//
// A Store is not safe for concurrent use: a replica executes operations one at
// a time, in sequence-number order.
package kv
