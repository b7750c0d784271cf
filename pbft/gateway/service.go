package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
	"github.com/pbft-nats/pbft/pbft/kv"
	"github.com/pbft-nats/pbft/pbft/node"
)

// Error codes of the client protocol (Maelstrom's).
const (
	CodeTimeout          = 0
	CodeNotSupported     = 10
	CodeUnavailable      = 11
	CodeMalformed        = 12
	CodeKeyNotFound      = 20 // the HTTP facade's GET of a key that is not set
	CodePreconditionFail = 22
)

// ProtoError is an error answer of the client protocol.
type ProtoError struct {
	Code int
	Text string
	// conflict marks error 22 for a request id used with another operation (not a
	// stale one, which stdio may still answer from its own record).
	conflict bool
}

func (e *ProtoError) Error() string { return fmt.Sprintf("error %d: %s", e.Code, e.Text) }

func protoErr(code int, format string, args ...any) *ProtoError {
	return &ProtoError{Code: code, Text: fmt.Sprintf(format, args...)}
}

// Service answers the messages of the client protocol (docs/protocol.md) against a cluster.
// The stdio mode and the network API both use it.
type Service struct {
	settings config.Settings
	log      *slog.Logger
	// start brings up the cluster once init names its replicas.
	start func(ids []string) (Backend, error)

	mu      sync.Mutex
	backend Backend
	nodeID  string
	ids     []string
	q       pbft.Quorum

	maxSeq atomic.Uint64 // highest sequence number assigned to a request so far
	// gaveUp is the highest maxSeq a query waited for in vain, for as long as a request
	// may take: later queries do not wait for it again, so with more than f replicas down
	// each line costs at most one timeout, not one per wait and line.
	gaveUp   atomic.Uint64
	lastView atomic.Uint64 // latest view seen, to guess the primary
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
		if id != s.nodeID || !slices.Equal(ids, s.ids) {
			return protoErr(CodePreconditionFail, "already initialised as %s of %v", s.nodeID, s.ids)
		}
		return nil
	}
	b, err := s.start(ids)
	if err != nil {
		return protoErr(CodeUnavailable, "cannot start the cluster: %v", err)
	}
	s.backend, s.nodeID, s.ids, s.q = b, id, ids, pbft.NewQuorum(len(ids))
	return nil
}

// replica maps a line's dest to the replica that handles it: dest itself when it names a
// replica, else the replica this gateway was initialised as.
func (s *Service) replica(dest string) string {
	if slices.Contains(s.ids, dest) {
		return dest
	}
	return s.nodeID
}

func (s *Service) live(id string) bool { return s.backend.Fault(id) == node.FaultNone }

// equivocating lists the embedded replicas made to equivocate.
func (s *Service) equivocating() []string {
	var out []string
	for _, id := range s.ids {
		if s.backend.Fault(id) == node.FaultEquivocate {
			out = append(out, id)
		}
	}
	return out
}

func (s *Service) liveIDs() []string {
	var out []string
	for _, id := range s.ids {
		if s.live(id) {
			out = append(out, id)
		}
	}
	return out
}

// RequestArgs are the fields of pbft_request and pbft_execute.
type RequestArgs struct {
	Operation string
	Client    string
	Timestamp uint64
}

// ParseRequest validates the body of pbft_request or pbft_execute.
func ParseRequest(l *jsonl.Line, msgID int64) (RequestArgs, error) {
	op, ok, err := l.String("operation")
	if err != nil || !ok || op == "" {
		return RequestArgs{}, protoErr(CodeMalformed, "operation must be a non-empty string")
	}
	client, ok, err := l.String("client")
	if err != nil {
		return RequestArgs{}, protoErr(CodeMalformed, "client must be a string")
	}
	if !ok || client == "" {
		client = l.Src
	}
	if client == "" {
		return RequestArgs{}, protoErr(CodeMalformed, "no client: neither body.client nor src is set")
	}
	return RequestArgs{Operation: op, Client: client, Timestamp: uint64(msgID)}, nil
}

// Assignment is where the cluster ordered a request.
type Assignment struct {
	Seq, View uint64
}

// Submit hands a request to replica dest (or, if the gateway knows dest is faulty, to a
// live replica in its name) and waits until a pre-prepare orders it. Like a PBFT client,
// it retransmits the request to every replica when ordering takes too long.
func (s *Service) Submit(ctx context.Context, dest string, a RequestArgs) (Assignment, error) {
	if err := s.checkOperation(a); err != nil {
		return Assignment{}, err
	}
	req := s.backend.Client().NewRequest(a.Client, a.Timestamp, []byte(a.Operation))
	return s.submit(ctx, s.replica(dest), req)
}

// checkOperation refuses an operation larger than the bus can carry in a pre-prepare;
// sent anyway, it would fail to publish and never be ordered.
func (s *Service) checkOperation(a RequestArgs) error {
	if limit := s.backend.Client().MaxOperation(); len(a.Operation) > limit {
		return protoErr(CodeMalformed, "operation is %d bytes; this cluster takes at most %d", len(a.Operation), limit)
	}
	return nil
}

func (s *Service) submit(ctx context.Context, target string, req *pbft.Request) (Assignment, error) {
	c := s.backend.Client()
	contact := target
	if !s.live(target) {
		contact = s.pickLive()
	}
	ctx, cancel := context.WithTimeout(ctx, s.settings.RequestTimeout)
	defer cancel()
	wait := int(s.settings.RequestTimeout / time.Millisecond)
	type result struct {
		a   *node.Answer
		err error
	}
	done := make(chan result, len(s.ids))
	asked := map[string]bool{}
	ask := func(id string) {
		asked[id] = true
		go func() {
			a, err := c.Query(ctx, id, &node.Query{Op: node.OpSubmit, Request: pbft.Marshal(req), WaitMillis: wait})
			done <- result{a, err}
		}()
	}
	ask(contact)
	retransmit := time.NewTimer(s.retransmitDelay())
	defer retransmit.Stop()
	if contact != target {
		_ = c.Broadcast(req) // the replica it was meant for cannot pass it on
	}
	var last result
	for answers := 0; answers < len(asked); {
		select {
		case r := <-done:
			answers++
			last = r
			if r.err != nil || !r.a.Ordered && r.a.Error != node.ErrStale {
				continue // another replica asked may still see it ordered
			}
			if r.a.Error == node.ErrStale {
				return Assignment{}, protoErr(CodePreconditionFail,
					"request %d of client %s is older than the replicas' reply cache remembers; send a new msg_id", req.Timestamp, req.Client)
			}
			if r.a.Conflict {
				return s.confirmConflict(ctx, req)
			}
			s.noteAssigned(r.a.Seq, r.a.View)
			return Assignment{Seq: r.a.Seq, View: r.a.View}, nil
		case <-retransmit.C:
			_ = c.Broadcast(req)
			retransmit.Reset(s.retransmitDelay())
			// The replica asked may be behind (catching up after a restart) and see the
			// ordering late: every live replica received the request now, ask them too.
			for _, id := range s.liveIDs() {
				if !asked[id] {
					ask(id)
				}
			}
		}
	}
	if last.err != nil {
		return Assignment{}, s.noReplies("request not ordered: no answer", s.askedIDs(asked))
	}
	return Assignment{}, s.noReplies("request not ordered: no pre-prepare seen", s.askedIDs(asked))
}

// retransmitDelay is how long a client waits for ordering before it sends the request to
// every replica: well under the view-change timeout, so backups start timing it early.
func (s *Service) retransmitDelay() time.Duration {
	d := s.settings.ViewChangeTimeout / 4
	if d < 20*time.Millisecond {
		d = 20 * time.Millisecond
	}
	return d
}

func (s *Service) noteAssigned(seq, view uint64) {
	raise(&s.maxSeq, seq)
	raise(&s.lastView, view)
}

// pickLive chooses a live replica to carry a request: the primary of the latest view
// seen, if live, else the first live one.
func (s *Service) pickLive() string {
	if p := s.ids[s.q.Primary(s.lastView.Load())]; s.live(p) {
		return p
	}
	if l := s.liveIDs(); len(l) > 0 {
		return l[0]
	}
	return s.ids[0]
}

// ExecuteResult is the outcome of pbft_execute.
type ExecuteResult struct {
	Seq, View uint64
	Result    string
	Replies   int
	// Absent is set when the result is a get of a key that is not set (Result is then
	// "", as the client protocol answers it; the HTTP API answers 404).
	Absent bool
}

// Invoke is the PBFT client's own path (Castro & Liskov §4.1): send the request to the
// primary of the latest view seen, accept the result once f+1 replicas reply with the
// same one, and broadcast the request to every replica when that takes too long. Unlike
// Execute it asks no replica where the request was ordered and does not wait for the
// replies beyond f+1, so it costs the replicas nothing but the request itself: the load
// tool and programs that only want the result use it.
func (s *Service) Invoke(ctx context.Context, a RequestArgs) (ExecuteResult, error) {
	if err := s.checkOperation(a); err != nil {
		return ExecuteResult{}, err
	}
	c := s.backend.Client()
	set, ok := c.Watch(a.Client, a.Timestamp, []byte(a.Operation))
	if !ok {
		return ExecuteResult{}, inFlightConflict(a)
	}
	defer c.Unwatch(a.Client, a.Timestamp)
	ctx, cancel := context.WithTimeout(ctx, s.settings.RequestTimeout)
	defer cancel()
	req := c.NewRequest(a.Client, a.Timestamp, []byte(a.Operation))
	if err := c.Send(s.pickLive(), req); err != nil {
		return ExecuteResult{}, protoErr(CodeUnavailable, "send: %v", err)
	}
	retransmit := time.NewTimer(s.retransmitDelay())
	defer retransmit.Stop()
	for {
		changed := set.Changed()
		if best, ok := set.Agreed(s.q.Weak()); ok {
			if isConflict(best, s.q.Weak()) {
				return ExecuteResult{}, conflictError(a.Client, a.Timestamp, best.Seq)
			}
			s.noteAssigned(best.Seq, best.View)
			return executeResult(best, Assignment{}), nil
		}
		select {
		case <-changed:
		case <-retransmit.C:
			_ = c.Broadcast(req)
			retransmit.Reset(s.retransmitDelay())
		case <-ctx.Done():
			return ExecuteResult{}, s.noReplies(fmt.Sprintf("no f+1 (%d) matching replies", s.q.Weak()), s.ids)
		}
	}
}

// Execute orders and executes a request and waits for its replies: f+1 matching ones
// decide the result; the answer waits for every live replica (or, against external
// replicas, a grace period after f+1), so that Replies is deterministic.
func (s *Service) Execute(ctx context.Context, dest string, a RequestArgs) (ExecuteResult, error) {
	return s.executeOrdered(ctx, dest, a, nil)
}

// executeOrdered is Execute that also calls ordered (if not nil) as soon as the request
// is ordered or has failed to be.
func (s *Service) executeOrdered(ctx context.Context, dest string, a RequestArgs, ordered func()) (ExecuteResult, error) {
	c := s.backend.Client()
	set, ok := c.Watch(a.Client, a.Timestamp, []byte(a.Operation))
	if !ok {
		if ordered != nil {
			ordered()
		}
		return ExecuteResult{}, inFlightConflict(a)
	}
	defer c.Unwatch(a.Client, a.Timestamp)
	deadline := time.Now().Add(s.settings.RequestTimeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	asg, err := s.Submit(ctx, dest, a)
	if ordered != nil {
		ordered()
	}
	if err != nil {
		return ExecuteResult{}, err
	}
	if s.quorumLost() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, hopelessWait)
		defer cancel()
	}
	live := s.liveIDs()
	var graceEnd <-chan time.Time
	// Retransmit to every replica while replies are missing: a request that executed
	// before (through another gateway, say) is answered from each replica's reply cache
	// only when that replica receives it.
	retransmit := time.NewTicker(s.retransmitDelay())
	defer retransmit.Stop()
	req := c.NewRequest(a.Client, a.Timestamp, []byte(a.Operation))
	for {
		changed := set.Changed()
		best, all := set.Best()
		if isConflict(best, s.q.Weak()) {
			return ExecuteResult{}, conflictError(a.Client, a.Timestamp, best.Seq)
		}
		if best.Replies >= s.q.Weak() {
			if s.backend.Embedded() && coversAll(all, live) {
				// An equivocating replica still executes and replies like the others, a
				// moment later or not: give it a short grace, so that whether its reply
				// counts does not depend on a race.
				if coversAll(all, s.equivocating()) {
					return executeResult(best, asg), nil
				}
				if graceEnd == nil {
					graceEnd = time.After(faultyGrace)
				}
			}
			if !s.backend.Embedded() {
				if len(all) == len(s.ids) {
					return executeResult(best, asg), nil
				}
				if graceEnd == nil {
					graceEnd = time.After(s.grace())
				}
			}
		}
		select {
		case <-changed:
		case <-retransmit.C:
			_ = c.Broadcast(req)
		case <-graceEnd:
			best, _ := set.Best()
			return executeResult(best, asg), nil
		case <-ctx.Done():
			best, _ := set.Best()
			if best.Replies >= s.q.Weak() {
				return executeResult(best, asg), nil
			}
			return ExecuteResult{}, s.noReplies(fmt.Sprintf("only %d matching replies, need %d,", best.Replies, s.q.Weak()), s.ids)
		}
	}
}

func executeResult(best Result, asg Assignment) ExecuteResult {
	view := best.View
	if asg.View > view {
		view = asg.View
	}
	res := ExecuteResult{Seq: best.Seq, View: view, Result: string(best.Value), Replies: best.Replies}
	if res.Result == kv.Absent {
		res.Result, res.Absent = "", true
	}
	return res
}

func coversAll(have map[string]bool, want []string) bool {
	for _, id := range want {
		if !have[id] {
			return false
		}
	}
	return true
}

// grace is how long the gateway waits for the rest once f+1 external replicas answered.
func (s *Service) grace() time.Duration {
	g := s.settings.RequestTimeout / 16
	if g > 250*time.Millisecond {
		g = 250 * time.Millisecond
	}
	return g
}

// Sync waits until every live replica has executed every request ordered so far and
// logged a matching commit for the latest from each live replica. It is what makes the
// answers of status, cluster and fault lines deterministic. It returns the replicas
// taken as live: those with no injected fault in the embedded cluster; against external
// replicas, those that answered (all, or f+1 and whoever followed within a grace period).
func (s *Service) Sync(ctx context.Context) []string {
	seq := s.maxSeq.Load()
	if !s.backend.Embedded() {
		ans := s.queryAll(ctx, s.ids, s.replicaWait(), func(string) *node.Query {
			return &node.Query{Op: node.OpInfo, Wait: &node.Wait{MinExecuted: seq}}
		})
		var live []string
		for _, id := range s.ids {
			if ans[id] != nil {
				live = append(live, id)
			}
		}
		return live
	}
	live := s.liveIDs()
	if seq == 0 || seq <= s.gaveUp.Load() {
		return live
	}
	wait := &node.Wait{MinExecuted: seq, CommitsFrom: live}
	ans := s.queryAll(ctx, live, s.waitMillis(), func(string) *node.Query {
		return &node.Query{Op: node.OpStatus, Seq: seq, Wait: wait}
	})
	for _, id := range live {
		if a := ans[id]; a == nil || a.TimedOut {
			raise(&s.gaveUp, seq)
			break
		}
	}
	return live
}

// raise sets v to x if x is higher.
func raise(v *atomic.Uint64, x uint64) {
	for {
		cur := v.Load()
		if x <= cur || v.CompareAndSwap(cur, x) {
			return
		}
	}
}

// faultyGrace is how long the embedded gateway waits for a silent or equivocating
// replica, which still receives and executes but is not waited for like a live one: long
// enough that whether it made it is not a race, short enough not to be a timeout.
const faultyGrace = 200 * time.Millisecond

// hopelessWait is how long the embedded gateway waits for what cannot happen: with fewer
// than 2f+1 honest replicas up no new request commits, and the wait is only for messages
// already on their way to arrive, so that the counts are the same every run.
const hopelessWait = 500 * time.Millisecond

// quorumLost reports an embedded cluster with fewer than 2f+1 replicas free of faults.
func (s *Service) quorumLost() bool {
	return s.backend.Embedded() && len(s.liveIDs()) < s.q.Commit()
}

// waitMillis is replicaWait, or hopelessWait once the quorum is lost.
func (s *Service) waitMillis() int {
	if s.quorumLost() {
		return int(hopelessWait / time.Millisecond)
	}
	return s.replicaWait()
}

// replicaWait bounds a replica's wait so that its answer arrives before the gateway gives up.
func (s *Service) replicaWait() int {
	return int(s.settings.RequestTimeout * 9 / 10 / time.Millisecond)
}

// queryAll sends a query to each of ids and collects the answers: from all of them in the
// embedded cluster, or until a grace period after f+1 against external replicas.
func (s *Service) queryAll(ctx context.Context, ids []string, wait int, mk func(id string) *node.Query) map[string]*node.Answer {
	ctx, cancel := context.WithTimeout(ctx, s.settings.RequestTimeout)
	defer cancel()
	c := s.backend.Client()
	type res struct {
		id string
		a  *node.Answer
	}
	ch := make(chan res, len(ids))
	for _, id := range ids {
		q := mk(id)
		if q.WaitMillis == 0 {
			q.WaitMillis = wait
		}
		go func() {
			a, err := c.Query(ctx, id, q)
			if err != nil {
				a = nil
			}
			ch <- res{id, a}
		}()
	}
	out := map[string]*node.Answer{}
	var graceEnd <-chan time.Time
	for got := 0; got < len(ids); {
		select {
		case r := <-ch:
			got++
			if r.a != nil {
				out[r.id] = r.a
				if r.a.View > s.lastView.Load() && r.a.ViewActive {
					s.lastView.Store(r.a.View)
				}
			}
			if !s.backend.Embedded() && len(out) >= s.q.Weak() && graceEnd == nil {
				graceEnd = time.After(s.grace())
			}
		case <-graceEnd:
			return out
		case <-ctx.Done():
			return out
		}
	}
	return out
}

// StatusResult is the answer to pbft_status.
type StatusResult struct {
	Phase              string
	Prepares, Commits  int
	Executed           bool
	TimedOut           bool
	ReplicaUnreachable bool
}

// Status reports the status of seq at replica dest, once Sync's condition holds.
func (s *Service) Status(ctx context.Context, dest string, seq uint64) (StatusResult, error) {
	target := s.replica(dest)
	live := s.Sync(ctx)
	q := &node.Query{Op: node.OpStatus, Seq: seq}
	wait := s.waitMillis()
	// A silent or equivocating replica still receives, so its counts settle like a live
	// one's; only a crashed replica is answered at once, from the state it stopped in.
	if s.backend.Fault(target) != node.FaultCrash {
		if max := s.maxSeq.Load(); max > 0 && (max > s.gaveUp.Load() || !s.backend.Embedded()) {
			q.Wait = &node.Wait{MinExecuted: max, CommitsFrom: live}
		}
	}
	if !s.backend.Embedded() {
		wait = int(2 * s.grace() / time.Millisecond)
	}
	ans := s.queryAll(ctx, []string{target}, wait, func(string) *node.Query { return q })
	a := ans[target]
	if a == nil {
		return StatusResult{}, protoErr(CodeTimeout, "replica %s did not answer", target)
	}
	if a.TimedOut && q.Wait != nil && s.backend.Embedded() {
		raise(&s.gaveUp, q.Wait.MinExecuted)
	}
	return StatusResult{Phase: a.Phase, Prepares: a.Prepares, Commits: a.Commits, Executed: a.Executed, TimedOut: a.TimedOut}, nil
}

// ReplicaInfo is one replica's line in pbft_cluster.
type ReplicaInfo struct {
	Node             string
	View             uint64
	LastExecuted     uint64
	StableCheckpoint uint64
	Fault            string
}

// ClusterResult is the answer to pbft_cluster.
type ClusterResult struct {
	View     uint64
	Primary  string
	Replicas []ReplicaInfo
}

// Cluster reports every replica's view and progress, once Sync's condition holds.
func (s *Service) Cluster(ctx context.Context, dest string) (ClusterResult, error) {
	target := s.replica(dest)
	s.Sync(ctx)
	seq := s.maxSeq.Load()
	ans := s.queryAll(ctx, s.ids, s.replicaWait(), func(id string) *node.Query {
		q := &node.Query{Op: node.OpInfo}
		// A silent or equivocating replica still receives and executes, a moment after
		// the others or not: a short grace, so that its line does not depend on a race.
		if f := s.backend.Fault(id); s.backend.Embedded() && seq > 0 && (f == node.FaultSilent || f == node.FaultEquivocate) {
			q.Wait, q.WaitMillis = &node.Wait{MinExecuted: seq}, int(faultyGrace/time.Millisecond)
		}
		return q
	})
	var out ClusterResult
	for _, id := range s.ids {
		info := ReplicaInfo{Node: id, Fault: string(s.backend.Fault(id))}
		if a := ans[id]; a != nil {
			info.View, info.LastExecuted, info.StableCheckpoint = a.View, a.LastExecuted, a.StableCheckpoint
			if a.Fault != "" && s.backend.Embedded() {
				info.Fault = a.Fault
			}
			if id == target {
				out.View, out.Primary = a.View, a.Primary
			}
		} else if !s.backend.Embedded() {
			info.Fault = "unreachable"
		}
		out.Replicas = append(out.Replicas, info)
	}
	if out.Primary == "" {
		out.Primary = s.ids[s.q.Primary(out.View)]
	}
	return out, nil
}

// Fault switches a replica's behaviour in the embedded cluster, after Sync, so that what
// the replica saw before the switch is exactly what was submitted before it.
func (s *Service) Fault(ctx context.Context, l *jsonl.Line) error {
	id, ok, err := l.String("node")
	if err != nil || !ok || !slices.Contains(s.ids, id) {
		return protoErr(CodeMalformed, "node must name one of %v", s.ids)
	}
	name, ok, err := l.String("fault")
	if err != nil || !ok {
		return protoErr(CodeMalformed, "fault must be a string")
	}
	if name == "recover" {
		name = string(node.FaultNone)
	}
	f, perr := node.ParseFault(name)
	if perr != nil || name == "" {
		return protoErr(CodeMalformed, "unknown fault %q: want crash, recover, silent, equivocate or none", name)
	}
	if !s.backend.Embedded() {
		return protoErr(CodeNotSupported, "faults can only be injected into the embedded cluster")
	}
	s.Sync(ctx)
	if err := s.backend.SetFault(id, f); err != nil {
		if errors.Is(err, ErrNotEmbedded) {
			return protoErr(CodeNotSupported, "%v", err)
		}
		return protoErr(CodeMalformed, "%v", err)
	}
	return nil
}
