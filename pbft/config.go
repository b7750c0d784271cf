package pbft

import (
	"errors"
	"fmt"
)

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("pbft: invalid config")

// Application is the replicated state machine: the service a cluster replicates (pbft/kv
// is one; examples/bank another; pbft/replica runs any). Its contract:
//
//   - Determinism. Every replica executes the same operations in the same order, and
//     each must get the same results and reach the same state: Execute may depend only
//     on the state and op, never on clocks, randomness, map iteration order, the
//     environment or I/O. A malformed op is not a Go error: it gets a result (the same
//     on every replica) and leaves the state as it was.
//   - Canonical snapshots. Snapshot of equal states gives equal bytes (checkpoints
//     compare their digests across replicas), and Restore(Snapshot()) gives back that
//     state. Restore must check what it is given (a snapshot travels between replicas)
//     and return an error, never panic, on bytes Snapshot did not produce.
//   - One goroutine. The Replica calls Execute, Snapshot and Restore only from Step and
//     Tick, which a driver (pbft/node) calls from one event-loop goroutine: never
//     concurrently, so the application needs no locks of its own. Another goroutine
//     must not read or change the state while the replica runs.
//
// An application may also implement ReadOnlyClassifier, to serve read-only requests.
type Application interface {
	// Execute applies op and returns its result. The replica keeps the result (its reply
	// cache) and sends it: the application must not modify it afterwards. No result may
	// begin with ConflictResult, which begins the replica's answer to a reused request id.
	Execute(op []byte) []byte
	// Snapshot encodes the whole state canonically (equal states, equal bytes).
	Snapshot() []byte
	// Restore replaces the state with a snapshot.
	Restore(snapshot []byte) error
}

// Config configures one Replica. Durations are in ticks: the driver decides how long a
// tick is.
type Config struct {
	// ID is this replica's index in [0, N).
	ID int
	// N is the number of replicas.
	N int
	// CheckpointInterval (K) is the distance between checkpoints.
	CheckpointInterval uint64
	// LogWindow (L) is high watermark minus low watermark; a multiple of K, at least 2K
	// so that the primary can keep ordering while a checkpoint becomes stable.
	LogWindow uint64
	// BatchMax is the most requests the primary puts in one pre-prepare.
	BatchMax int
	// BatchBytes bounds the requests of one pre-prepare, their operations, names and
	// authenticators (a larger request goes alone).
	BatchBytes int
	// ViewChangeTicks is how long a backup waits for a request it knows of to execute
	// before it suspects the primary; it doubles with each view that fails.
	ViewChangeTicks int
	// StatusTicks is the period of status broadcasts that let peers retransmit what a
	// replica lacks.
	StatusTicks int
	// ViewChangeBatchBytes bounds the batches one VIEW-CHANGE carries; past it the
	// prepared entries name their batch by digest only, and a new primary that lacks one
	// fetches it (FetchBatch). 0 leaves every batch out.
	ViewChangeBatchBytes int
	// StateChunk is the most snapshot bytes one State message carries; a larger state
	// travels in pieces. Keep it well under the bus's message limit.
	StateChunk int
	// ClientHistory is how many executed requests per client keep their reply cached, so
	// a retransmission is answered from the cache instead of being executed again.
	ClientHistory int
	// Durable makes Ready carry the records a driver with a durable log must keep
	// (Persist, Compact); see Restore.
	Durable bool
	// App is the state machine requests execute on.
	App Application

	// Members names the replicas of configuration Configuration in rotation order
	// (len N, this replica Members[ID]). Without it the replica cannot be reconfigured:
	// a reconfiguration executes to a refusal.
	Members []string
	// Configuration is the number of the configuration Members form (0 at init).
	Configuration uint64
	// Admin is the principal (the authenticated gateway of a request) allowed to
	// reconfigure; empty, nobody may.
	Admin string
	// JoinFrom, when set, makes this replica a joiner: Members is the configuration it
	// joins (Configuration = JoinFrom.Conf+1), and it takes part only once it has fetched
	// the state at the reconfiguration that ends JoinFrom, certified by a quorum of
	// JoinFrom's members.
	JoinFrom *Membership
	// Join, when set, makes this replica a joiner told only the membership it joins
	// (Members): it takes no part until the administrator's reconfiguration to Members
	// reaches it as a client request, which names the configuration it ends; then it
	// joins as with JoinFrom (admit.go). It needs Admin.
	Join bool
	// Signer signs and checks transition certificates (chain.go): with it, a replica that
	// slept through several reconfigurations catches up into the newest configuration.
	// Without it no certificates are made, and such a replica stays behind.
	Signer Signer
}

// DefaultConfig returns a Config with the protocol defaults; the caller sets ID, N and App.
func DefaultConfig() Config {
	return Config{
		CheckpointInterval:   128,
		LogWindow:            256,
		BatchMax:             64,
		BatchBytes:           256 << 10,
		ViewChangeTicks:      20,
		StatusTicks:          10,
		ClientHistory:        128,
		StateChunk:           256 << 10,
		ViewChangeBatchBytes: 256 << 10,
	}
}

// Validate checks every field and the relations between them.
func (c Config) Validate() error {
	switch {
	case c.N < 1:
		return fmt.Errorf("%w: N = %d, need at least 1", ErrConfig, c.N)
	case c.N > maxListLen:
		return fmt.Errorf("%w: N = %d, at most %d", ErrConfig, c.N, maxListLen)
	case c.ID < 0 || c.ID >= c.N:
		return fmt.Errorf("%w: ID %d not in [0, %d)", ErrConfig, c.ID, c.N)
	case c.CheckpointInterval < 1:
		return fmt.Errorf("%w: CheckpointInterval must be positive", ErrConfig)
	case c.LogWindow < 2*c.CheckpointInterval || c.LogWindow%c.CheckpointInterval != 0:
		return fmt.Errorf("%w: LogWindow %d must be a multiple of CheckpointInterval %d and at least twice it",
			ErrConfig, c.LogWindow, c.CheckpointInterval)
	case c.BatchMax < 1:
		return fmt.Errorf("%w: BatchMax must be positive", ErrConfig)
	case c.ViewChangeTicks < 1 || c.StatusTicks < 1:
		return fmt.Errorf("%w: ViewChangeTicks and StatusTicks must be positive", ErrConfig)
	case c.BatchBytes < 1:
		return fmt.Errorf("%w: BatchBytes must be positive", ErrConfig)
	case c.ViewChangeBatchBytes < 0:
		return fmt.Errorf("%w: ViewChangeBatchBytes must not be negative", ErrConfig)
	case c.StateChunk < 1:
		return fmt.Errorf("%w: StateChunk must be positive", ErrConfig)
	case c.ClientHistory < 1:
		return fmt.Errorf("%w: ClientHistory must be positive", ErrConfig)
	case c.App == nil:
		return fmt.Errorf("%w: App is required", ErrConfig)
	case c.Members != nil && len(c.Members) != c.N:
		return fmt.Errorf("%w: %d members for N = %d", ErrConfig, len(c.Members), c.N)
	case c.JoinFrom != nil && c.Members == nil:
		return fmt.Errorf("%w: a joiner needs Members", ErrConfig)
	case c.Join && (c.Members == nil || c.JoinFrom != nil || c.Admin == ""):
		return fmt.Errorf("%w: Join needs Members and Admin, and no JoinFrom", ErrConfig)
	case c.JoinFrom != nil && c.JoinFrom.Conf+1 != c.Configuration:
		return fmt.Errorf("%w: joining configuration %d from %d", ErrConfig, c.Configuration, c.JoinFrom.Conf)
	}
	if c.Members != nil {
		if err := ValidateMembers(c.Members); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if c.JoinFrom != nil {
		if err := ValidateMembers(c.JoinFrom.Members); err != nil {
			return fmt.Errorf("%w: JoinFrom: %w", ErrConfig, err)
		}
	}
	return nil
}

// FitBus bounds what one message of r carries to a bus that takes maxPayload bytes a
// message: a pre-prepare's operations, a view change's batches and a state chunk get
// half of it at most (the rest is room for their other fields and the envelope), where
// the configuration allowed more. The driver calls it once its transport is connected.
func (r *Replica) FitBus(maxPayload int64) {
	half := int(min(maxPayload/2, 1<<30))
	if half <= 0 {
		return
	}
	r.cfg.BatchBytes = min(r.cfg.BatchBytes, half)
	r.cfg.ViewChangeBatchBytes = min(r.cfg.ViewChangeBatchBytes, half)
	r.cfg.StateChunk = min(r.cfg.StateChunk, half)
}
