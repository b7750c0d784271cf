package node

import (
	"sync"
	"time"

	"github.com/pbft-nats/pbft/pbft"
)

// Instrumentation of the node loop, for a replica's /metrics and /readyz (package
// nodehttp). Everything here is written by the node's goroutine through three hooks:
//
//   - noteStepped, when an authenticated message or request is stepped into the replica:
//     remembers which replicas were heard from, and when each request (client,
//     timestamp) was first stepped;
//   - noteReady, with every Ready: a reply for a request of a batch executed in that
//     Ready ends the request's latency (first stepped to executed), and the replies per
//     executed sequence number give the batch size;
//   - noteLoop, after every loop iteration: the view, progress and liveness snapshot.
//
// noteStepped and noteReady keep their own maps; noteLoop reads the replica, which only
// the node's goroutine may do.
//
// Metrics returns a copy that any goroutine may read.

// LatencyBuckets are the upper bounds, in seconds, of the request latency histogram.
var LatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// BatchBuckets are the upper bounds of the batch size histogram (requests per executed
// batch).
var BatchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}

// InFlightBuckets are the upper bounds of the histogram of batches in flight when the
// primary proposes.
var InFlightBuckets = []float64{0, 1, 2, 4, 8, 16, 32, 64}

// maxLatencyPending bounds the requests whose start time the node remembers: a request
// that never executes here (refused, or executed while this replica was away) must not
// grow memory for ever. Past the bound, new requests are not timed.
const maxLatencyPending = 1 << 16

// Histogram is a cumulative histogram in Prometheus' sense: Counts[i] counts the
// observations <= Bounds[i]; Count and Sum cover every observation (the +Inf bucket is
// Count).
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

func newHistogram(bounds []float64) Histogram {
	return Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds))}
}

func (h *Histogram) observe(v float64) {
	for i, b := range h.Bounds {
		if v <= b {
			h.Counts[i]++
		}
	}
	h.Count++
	h.Sum += v
}

func (h Histogram) clone() Histogram {
	h.Counts = append([]uint64(nil), h.Counts...)
	return h
}

// MetricsSnapshot is the node's state for monitoring, as of the last loop iteration.
type MetricsSnapshot struct {
	ID               string
	View             uint64
	Primary          string
	ViewActive       bool
	ViewChanges      uint64
	LastExecuted     uint64
	StableCheckpoint uint64
	// LoopAt is when the node loop last finished an iteration (zero before Run); a live
	// loop updates it at least once per tick.
	LoopAt time.Time
	// Running is true from the first loop iteration until Run returns.
	Running bool
	// HeardFrom is how many other replicas this process has stepped an authenticated
	// message from since it started.
	HeardFrom int
	// ExecutedBatches counts the batches this process executed since it started.
	ExecutedBatches uint64
	// CaughtUp counts the sequence numbers this process executed by catch-up (its peers'
	// commits, not the normal case) since it started: a replica that keeps needing it
	// misses pre-prepares.
	CaughtUp uint64
	// Latency is the time from a request's first step into this replica to its execution,
	// in seconds; only requests this replica received directly (from a gateway or a
	// forwarded/broadcast request) are timed.
	Latency Histogram
	// BatchSize is the number of requests per executed batch (null batches of a view
	// change, which order no request, are not observed).
	BatchSize Histogram
	// InFlight is, each time this replica as primary orders what it has queued, how many
	// of its batches were ordered and not yet executed here: how many rounds overlap.
	InFlight Histogram
	// F is the number of faulty replicas the cluster tolerates.
	F int
	// Configuration is the configuration the replica is in; NotMember is set while it
	// is no member of it (it left, or waits to join).
	Configuration uint64
	NotMember     bool
	// WAL is what the durable log's writer did (zero without a data dir).
	WAL WALStats
}

// nodeMetrics is the node's instrumentation; its zero value is ready to use.
type nodeMetrics struct {
	mu       sync.Mutex
	snap     MetricsSnapshot
	started  map[submitKey]time.Time // when each timed request was first stepped
	heard    map[int]bool            // replica indexes heard from
	perSeq   map[uint64]int          // scratch for noteReady
	prunedAt time.Time
}

func (m *nodeMetrics) initLocked() {
	if m.started == nil {
		m.started = map[submitKey]time.Time{}
		m.heard = map[int]bool{}
		m.perSeq = map[uint64]int{}
		m.snap.Latency = newHistogram(LatencyBuckets)
		m.snap.BatchSize = newHistogram(BatchBuckets)
		m.snap.InFlight = newHistogram(InFlightBuckets)
	}
}

// noteStepped records that msg from replica index from (or pbft.FromClient) was stepped.
func (m *nodeMetrics) noteStepped(from int, msg pbft.Message, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initLocked()
	if from >= 0 && !m.heard[from] {
		m.heard[from] = true
		m.snap.HeardFrom = len(m.heard)
	}
	req, ok := msg.(*pbft.Request)
	if !ok || req.ReadOnly {
		return // a read-only request never executes in a batch: it has no latency here
	}
	k := submitKey{req.Client, req.Timestamp}
	if _, seen := m.started[k]; !seen && len(m.started) < maxLatencyPending {
		m.started[k] = now
	}
}

// noteReady observes the executions and replies of one Ready.
func (m *nodeMetrics) noteReady(rd *pbft.Ready, now time.Time) {
	if len(rd.Executed) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initLocked()
	clear(m.perSeq)
	for _, ex := range rd.Executed {
		m.perSeq[ex.Seq] = 0
	}
	m.snap.ExecutedBatches += uint64(len(rd.Executed))
	for _, o := range rd.Messages {
		rep, ok := o.Msg.(*pbft.Reply)
		if !ok || rep.ReadOnly {
			continue
		}
		if _, executedNow := m.perSeq[rep.Seq]; !executedNow {
			continue // a cached reply to a retransmission
		}
		m.perSeq[rep.Seq]++
		k := submitKey{rep.Client, rep.Timestamp}
		if t0, ok := m.started[k]; ok {
			m.snap.Latency.observe(now.Sub(t0).Seconds())
			delete(m.started, k)
		}
	}
	for _, n := range m.perSeq {
		if n > 0 {
			m.snap.BatchSize.observe(float64(n))
		}
	}
}

// noteProposal observes the batches in flight when the primary orders more.
func (m *nodeMetrics) noteProposal(inflight uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initLocked()
	m.snap.InFlight.observe(float64(inflight))
}

// noteLoop updates the snapshot after a loop iteration.
func (m *nodeMetrics) noteLoop(n *Node, now time.Time) {
	r := n.r
	m.mu.Lock()
	defer m.mu.Unlock()
	m.initLocked()
	s := &m.snap
	s.ID, s.F = n.cfg.ID, r.Quorum().F
	s.View, s.Primary, s.ViewActive, s.ViewChanges = r.View(), n.ids[r.Primary()], r.ViewActive(), r.ViewChanges()
	s.LastExecuted, s.StableCheckpoint = r.LastExecuted(), r.StableCheckpoint()
	s.Configuration, s.NotMember = r.Configuration(), !r.IsMember()
	s.CaughtUp = r.CatchUps()
	s.LoopAt, s.Running = now, true
	// Requests refused or dropped never execute here: every ten seconds, forget the ones
	// older than anything a client would still wait for.
	if len(m.started) > 0 && now.Sub(m.prunedAt) > 10*time.Second {
		m.prunedAt = now
		for k, t0 := range m.started {
			if now.Sub(t0) > time.Minute {
				delete(m.started, k)
			}
		}
	}
}

// Metrics returns a snapshot of the node's instrumentation. It is safe to call from any
// goroutine.
func (n *Node) Metrics() MetricsSnapshot {
	m := &n.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.snap
	if s.ID == "" {
		s.ID = n.cfg.ID
	}
	if s.Latency.Bounds == nil {
		s.Latency = newHistogram(LatencyBuckets)
		s.BatchSize = newHistogram(BatchBuckets)
	}
	select {
	case <-n.closedCh:
		s.Running = false
	default:
	}
	s.Latency = s.Latency.clone()
	s.BatchSize = s.BatchSize.clone()
	s.InFlight = s.InFlight.clone()
	s.WAL = n.walCounts.Load().stats()
	return s
}
