package gateway

import (
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pbft-nats/pbft/bus"
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
	// ids and q are the membership the gateway answers for, of configuration conf; read
	// them with members(), which follows the client's configuration.
	ids     []string
	initIDs []string // node_ids of init: a repeat init is checked against them
	q       pbft.Quorum
	conf    uint64

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
		if err := bus.CheckToken("node id", x); err != nil { // ids travel in NATS subjects
			return protoErr(CodeMalformed, "%v: a replica id must be a NATS subject token (no '.', whitespace, '*' or '>')", err)
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

// members is the membership the gateway answers for and its quorum: the one of init or
// of the gateway's last reconfiguration, or a newer one its client learnt from the
// replicas (another client reconfigured them: client.Discover), which it follows.
func (s *Service) members() ([]string, pbft.Quorum) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backend != nil {
		if conf, ids := s.backend.Client().Configuration(); conf > s.conf && len(ids) > 0 {
			s.conf, s.ids, s.q = conf, ids, pbft.NewQuorum(len(ids))
		}
	}
	return s.ids, s.q
}

// setMembers is the membership a reconfiguration made here put in force.
func (s *Service) setMembers(m pbft.Membership) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Conf >= s.conf {
		s.conf, s.ids, s.q = m.Conf, m.Members, pbft.NewQuorum(len(m.Members))
	}
}

// replica maps a line's dest to the replica that handles it: dest itself when it names a
// replica, else the replica this gateway was initialised as.
func (s *Service) replica(dest string) string {
	ids, _ := s.members()
	if slices.Contains(ids, dest) {
		return dest
	}
	if slices.Contains(ids, s.nodeID) {
		return s.nodeID
	}
	// A name that left the membership, or was never used, after the init node left:
	// the current primary handles it.
	if b := s.Backend(); b != nil {
		if p := b.Client().Primary(); p != "" {
			return p
		}
	}
	return ids[0]
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
