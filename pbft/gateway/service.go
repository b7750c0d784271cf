package gateway

import (
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// Service answers the messages of the client protocol (docs/protocol.md) against a cluster,
// through the PBFT client of its backend; the backend's settle policy says how long each
// answer waits and for whom. The stdio mode and the network API both use it.
type Service struct {
	settings config.Settings
	log      *slog.Logger
	// start brings up the cluster once init names its replicas.
	start func(ids []string) (Backend, error)

	mu      sync.Mutex
	backend Backend
	nodeID  string
	ids     []string
	initIDs []string // node_ids of init: a repeat init is checked against them
	q       pbft.Quorum

	maxSeq atomic.Uint64 // highest sequence number assigned to a request so far
	// reconfSeq is the sequence number of the latest reconfiguration.
	reconfSeq atomic.Uint64
	// waitedInVain is the highest maxSeq a query waited for in vain, for as long as a
	// request may take: later queries do not wait for it again, so with more than f
	// replicas down each line costs at most one timeout, not one per wait and line.
	waitedInVain atomic.Uint64
}

// NewService returns a service whose cluster start is deferred to init.
func NewService(s config.Settings, logger *slog.Logger, start func(ids []string) (Backend, error)) *Service {
	return &Service{settings: s, log: logger, start: start}
}

// Close stops the cluster, if one was started.
func (s *Service) Close() {
	s.mu.Lock()
	b := s.backend
	s.backend = nil
	s.mu.Unlock()
	if b != nil {
		b.Close()
	}
}

// Initialised reports whether init has started the cluster.
func (s *Service) Initialised() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backend != nil
}

// Backend returns the cluster, or nil before init.
func (s *Service) Backend() Backend {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backend
}

// Init handles init {node_id, node_ids}.
func (s *Service) Init(l *jsonl.Line) error {
	id, ok, err := l.String("node_id")
	if err != nil || !ok || id == "" {
		return protoErr(CodeMalformed, "init needs node_id, a non-empty string")
	}
	ids, ok, err := l.Strings("node_ids")
	if err != nil || !ok || len(ids) == 0 {
		return protoErr(CodeMalformed, "init needs node_ids, a non-empty list of strings")
	}
	seen := map[string]bool{}
	for _, x := range ids {
		if x == "" || seen[x] {
			return protoErr(CodeMalformed, "node_ids must be distinct non-empty strings")
		}
		seen[x] = true
	}
	if !seen[id] {
		return protoErr(CodeMalformed, "node_id %q is not in node_ids", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backend != nil {
		if id != s.nodeID || !slices.Equal(ids, s.initIDs) {
			return protoErr(CodePreconditionFail, "already initialised as %s of %v", s.nodeID, s.initIDs)
		}
		return nil
	}
	b, err := s.start(ids)
	if err != nil {
		return protoErr(CodeUnavailable, "cannot start the cluster: %v", err)
	}
	s.backend, s.nodeID, s.ids, s.q = b, id, ids, pbft.NewQuorum(len(ids))
	s.initIDs = ids
	return nil
}

// replica maps a line's dest to the replica that handles it: dest itself when it names a
// replica, else the replica this gateway was initialised as.
func (s *Service) replica(dest string) string {
	if slices.Contains(s.ids, dest) {
		return dest
	}
	if slices.Contains(s.ids, s.nodeID) {
		return s.nodeID
	}
	// A name that left the membership, or was never used, after the init node left:
	// the current primary handles it.
	if b := s.Backend(); b != nil {
		if p := b.Client().Primary(); p != "" {
			return p
		}
	}
	return s.ids[0]
}

// storeMax sets v to x if x is higher.
func storeMax(v *atomic.Uint64, x uint64) {
	for {
		cur := v.Load()
		if x <= cur || v.CompareAndSwap(cur, x) {
			return
		}
	}
}
