package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pbft-nats/pbft/bus/auth"
	"github.com/pbft-nats/pbft/pbft"
)

// ErrConfig reports an invalid node configuration.
var ErrConfig = errors.New("node: invalid config")

// Config configures a Node.
type Config struct {
	// ID is this replica's id; NodeIDs lists all replicas in order (primary of view v is
	// NodeIDs[v mod n]).
	ID      string
	NodeIDs []string
	// Protocol holds the protocol settings; ID, N and App are filled in by New.
	Protocol pbft.Config
	// App is the replicated state machine (required). The node calls it only from its
	// own goroutine, never concurrently; see pbft.Application for its contract.
	App pbft.Application
	// Tick is the length of one protocol tick.
	Tick time.Duration
	// Fault is a built-in Byzantine behaviour, for tests and demos.
	Fault Fault
	// ForgedResult, if not nil, replaces the result of every reply the replica sends: a
	// Byzantine replica that lies to clients, for tests and demos of the client's vote.
	// No setting reaches it (it is not a PBFT_FAULT behaviour).
	ForgedResult []byte
	// DataDir, if set, holds the replica's durable log: it restarts from it.
	DataDir string
	// BatchTimeout is how long a primary waits for a batch to fill before ordering what
	// it has, while batches are in flight or clients it just answered are coming back
	// (batching.go); 0 orders at the end of every burst of input.
	BatchTimeout time.Duration
	// Trace publishes trace events (package trace) if the transport can carry them.
	Trace bool
	// Keys authenticates everything the node sends and receives. Required: a replica never
	// runs unauthenticated.
	Keys *auth.Keyring
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Configuration is the number of the configuration NodeIDs form (0 at init).
	Configuration uint64
	// JoinFrom makes the replica a joiner of Configuration: NodeIDs is the membership it
	// joins, JoinFrom the one the reconfiguration ends (pbft.Config.JoinFrom).
	JoinFrom *pbft.Membership
	// Join makes the replica a joiner told only NodeIDs, the membership it joins: it
	// waits for the administrator's reconfiguration to it (pbft.Config.Join).
	Join bool
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Tick <= 0 {
		return fmt.Errorf("%w: tick must be positive", ErrConfig)
	}
	seen := map[string]bool{}
	for _, id := range c.NodeIDs {
		if id == "" || seen[id] {
			return fmt.Errorf("%w: node ids must be distinct and non-empty: %q", ErrConfig, c.NodeIDs)
		}
		seen[id] = true
	}
	if !seen[c.ID] {
		return fmt.Errorf("%w: %q is not one of the node ids %q", ErrConfig, c.ID, c.NodeIDs)
	}
	if c.Keys == nil || c.Keys.Self().ID != c.ID {
		return fmt.Errorf("%w: replica %s needs its own keys", ErrConfig, c.ID)
	}
	return nil
}
