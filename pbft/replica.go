package pbft

import (
	"crypto/sha256"
	"errors"
	"fmt"
)

// ErrRejected reports a message the replica did not take: from the wrong sender, for
// another view, outside the watermarks, or contradicting what it holds. Rejections are
// normal under faults; the driver counts them.
var ErrRejected = errors.New("pbft: message rejected")

// Destination values for Outbound.To.
const (
	// Broadcast sends to every other replica.
	Broadcast = -1
	// ToGateway sends to the gateway named in Outbound.Gateway.
	ToGateway = -2
)

// FromClient is the sender index Step takes for a request that came straight from a
// gateway rather than from a replica.
const FromClient = -1

// Outbound is a message the replica wants sent.
type Outbound struct {
	// To is a replica index (of configuration Conf), Broadcast or ToGateway.
	To      int
	Gateway string
	Msg     Message
	// Conf is the configuration the message belongs to: the driver sends it with the
	// message (authenticated), and its receiver reads the sender's index in it
	// (MembersOf). A broadcast goes to the members of Conf and of the configuration
	// that follows it, if one is decided (joiners need the checkpoint at its start).
	Conf uint64
	// Peer, when set, names the receiver instead of To: across configurations (a
	// joiner fetching state from a replica that is no member of its configuration).
	Peer string
}

// Ready is what the driver must do after stepping the replica: persist Persist (before
// sending anything), then send Messages.
type Ready struct {
	Messages []Outbound
	// Executed lists the batches executed since the last Ready, in order.
	Executed []Executed
	// ViewChanged is true when the replica entered a new view or started a view change.
	ViewChanged bool
	// StateInstalled is true when a snapshot from state transfer was installed.
	StateInstalled bool
	// Persist lists durable records (see durable.go) to append to the log before
	// Messages are sent (durable.go names the exceptions, replies and votes, a driver
	// may use). Only with Config.Durable.
	Persist []Message
	// Compact, when not nil, is the whole durable state: the driver replaces its log with
	// it (before appending Persist, which is then empty) and before sending Messages.
	Compact []Message
}

// Executed identifies one executed batch.
type Executed struct {
	Seq    uint64
	Digest Digest
}

// Replica is the PBFT protocol state of one replica: a deterministic state machine. Step
// feeds it messages, Tick advances its timers, Propose makes the primary order what it has
// queued, and Ready hands out what to send. It does no I/O, reads no clock and starts no
// goroutines, so a test can drive any interleaving and replay it exactly.
type Replica struct {
	cfg Config
	q   Quorum
	id  int
	app Application

	view       uint64
	viewActive bool // false while this replica is changing view
	// followView is the last view this replica was active in. While changing view it
	// follows that view passively: it sends nothing for it, but executes what 2f+1 commits
	// from others prove committed, so a replica whose view change nobody joined keeps up.
	followView uint64
	nextSeq    uint64 // the primary's last assigned sequence number
	lowWater   uint64 // h: sequence number of the last stable checkpoint
	lastExec   uint64

	log      map[uint64]*entry
	maxSeq   uint64 // highest sequence number with an entry
	pending  *requestQueue
	inflight map[reqKey]uint64 // requests in accepted pre-prepares, not yet executed
	ret      returning         // clients a primary expects back (returning.go)
	clients  *clientTable
	// refusedReissues counts pre-prepares for executed numbers with another digest.
	refusedReissues uint64

	checkpoints *checkpointState
	history     *statusHistory
	transfer    *stateTransfer

	vc *viewChangeState

	ticks       uint64
	statusTimer int
	peerExec    []uint64 // last executed number each peer reported in its status
	peerLow     []uint64 // stable checkpoint each peer reported in its status
	catch       *catchUpState

	out      []Outbound
	executed []Executed
	// nextReady holds the ViewChanged and StateInstalled signals of the next Ready; its
	// messages, executed batches and records are gathered in out, executed and persistQ.
	nextReady Ready

	persistQ            []Message
	compactPending      bool
	restoringCheckpoint uint64 // Restore: the own checkpoint whose state comes next
	// restartedIn is the view a replica restored from its log was active in; it votes in
	// none of it (restartPassive, durable.go). Nil for a replica that never restarted.
	restartedIn *viewAt

	// Configurations (reconfig.go).
	conf   configState
	self   string
	member bool // false for a replica that left (or has not joined yet)
	// prev is the configuration before the current one, and prevID this replica's index
	// in it (-1 if none): late messages of prev are read with it.
	prev   *Membership
	prevID int
	// transSeq and transDigest are the reconfiguration that started the current
	// configuration and the state right after it.
	transSeq    uint64
	transDigest Digest
	// barrier is the number of a reconfiguration accepted in this view: nothing above it
	// is ordered in this configuration.
	barrier uint64
	join    *joinState
	// awaiting is a replica started with Config.Join that has not yet been admitted by
	// the administrator's reconfiguration (admit.go).
	awaiting bool
	// admission is the reconfiguration that admitted it, kept in the durable state until
	// it has joined.
	admission *Request
	// chain holds the transition certificates this replica knows (chainsync.go).
	chain chainState
	// confVersion counts changes of the configurations this replica knows (KnownMembers).
	confVersion uint64
}

// NewReplica returns a replica in view 0 with an empty log.
func NewReplica(cfg Config) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Replica{
		cfg:        cfg,
		q:          NewQuorum(cfg.N),
		id:         cfg.ID,
		app:        cfg.App,
		viewActive: true,
		log:        make(map[uint64]*entry),
		pending:    newRequestQueue(),
		inflight:   make(map[reqKey]uint64),
		clients:    newClientTable(cfg.ClientHistory),
		history:    newStatusHistory(),
		peerExec:   make([]uint64, cfg.N),
		peerLow:    make([]uint64, cfg.N),
		catch:      newCatchUp(cfg.N),
	}
	r.initConfig()
	r.checkpoints = newCheckpointState()
	r.checkpoints.own[0] = r.stateDigest(nil)
	r.vc = newViewChangeState(cfg.ViewChangeTicks)
	return r, nil
}

// ID returns this replica's index.
func (r *Replica) ID() int { return r.id }

// Quorum returns the quorum sizes of this cluster.
func (r *Replica) Quorum() Quorum { return r.q }

// View returns the current view (the one being changed to, during a view change).
func (r *Replica) View() uint64 { return r.view }

// ViewActive is false while a view change is in progress.
func (r *Replica) ViewActive() bool { return r.viewActive }

// Primary returns the index of the current view's primary.
func (r *Replica) Primary() int { return r.q.Primary(r.view) }

// IsPrimary reports whether this replica is the current primary.
func (r *Replica) IsPrimary() bool { return r.Primary() == r.id }

// LastExecuted returns the sequence number of the last executed batch.
func (r *Replica) LastExecuted() uint64 { return r.lastExec }

// StableCheckpoint returns the sequence number of the last stable checkpoint.
func (r *Replica) StableCheckpoint() uint64 { return r.lowWater }

// Ready returns what the driver must do now and clears it.
func (r *Replica) Ready() Ready {
	rd := r.nextReady
	rd.Messages, rd.Executed = r.out, r.executed
	if r.compactPending {
		rd.Compact = r.durableState()
	}
	rd.Persist = r.persistQ
	r.out, r.executed, r.nextReady = nil, nil, Ready{}
	r.persistQ, r.compactPending = nil, false
	return rd
}

// maxRecycled bounds the capacity of a messages slice Recycle keeps.
const maxRecycled = 1024

// Recycle hands back the Messages of a Ready whose messages the driver has sent and no
// longer holds: the next Ready collects into its capacity instead of growing a new
// slice (many small appends per Ready under load). A driver need not call it.
func (r *Replica) Recycle(msgs []Outbound) {
	if r.out != nil || cap(msgs) == 0 || cap(msgs) > maxRecycled {
		return
	}
	clear(msgs[:cap(msgs)]) // let the messages go
	r.out = msgs[:0]
}

// HasReady reports whether Ready has anything.
func (r *Replica) HasReady() bool {
	return len(r.out) > 0 || len(r.executed) > 0 || r.nextReady.ViewChanged || r.nextReady.StateInstalled ||
		len(r.persistQ) > 0 || r.compactPending
}

func (r *Replica) send(to int, m Message) {
	r.out = append(r.out, Outbound{To: to, Msg: m, Conf: r.conf.cur.Conf})
}

func (r *Replica) broadcast(m Message) { r.send(Broadcast, m) }

// Step feeds one message of the current configuration, authenticated as coming from
// replica from (or FromClient for a request straight from a gateway). The driver must
// have checked that the sender named inside the message, where there is one, is from.
// Messages tagged with a configuration go through StepIn.
func (r *Replica) Step(from int, m Message) error {
	return r.StepIn(r.conf.cur.Conf, from, m)
}

func (r *Replica) step(from int, m Message) error {
	if from != FromClient && (from < 0 || from >= r.q.N) {
		return fmt.Errorf("%w: sender %d out of range", ErrRejected, from)
	}
	if from == r.id {
		return fmt.Errorf("%w: message from self", ErrRejected)
	}
	switch m := m.(type) {
	case *Request:
		return r.stepRequest(from, m)
	case *PrePrepare:
		return r.stepPrePrepare(from, m)
	case *Prepare:
		return r.stepPrepare(from, m)
	case *Commit:
		return r.stepCommit(from, m)
	case *Checkpoint:
		return r.stepCheckpoint(from, m)
	case *StatusMsg:
		return r.stepStatus(from, m)
	case *Fetch:
		return r.stepFetch(from, m)
	case *State:
		return r.stepState(from, m)
	case *ViewChange:
		return r.stepViewChange(from, m)
	case *NewView:
		return r.stepNewView(from, m)
	case *FetchBatch:
		return r.stepFetchBatch(from, m)
	case *BatchMsg:
		return r.stepBatch(from, m)
	case *Committed:
		return r.stepCommitted(from, m)
	}
	return fmt.Errorf("%w: %s is not for replicas", ErrRejected, m.Kind())
}

// Tick advances the replica's clock by one tick.
func (r *Replica) Tick() {
	r.ticks++
	if r.awaiting {
		if r.statusTimer++; r.statusTimer >= r.cfg.StatusTicks {
			r.statusTimer = 0
			r.askAdmission() // admit.go: in case it was admitted while not running
		}
		return
	}
	if r.join != nil {
		if r.statusTimer++; r.statusTimer >= r.cfg.StatusTicks {
			r.statusTimer = 0
			r.tickJoin()
		}
		return
	}
	if !r.member {
		return // a replica that left only answers state transfer
	}
	r.statusTimer++
	if r.statusTimer >= r.cfg.StatusTicks {
		r.statusTimer = 0
		r.broadcast(&StatusMsg{View: r.view, LowWater: r.lowWater, LastExecuted: r.lastExec, Replica: r.id})
		r.tickTransfer()
		r.resendTransition()
	}
	r.tickViewChange()
	if !r.IsPrimary() {
		r.ret.reset()
	} else {
		r.ret.expire(r.ticks)
	}
}

// stateDigest is the digest of the replicated state (application plus client table);
// snap, if not nil, receives the snapshot bytes.
func (r *Replica) stateDigest(snap *[]byte) Digest {
	b := encodeSnapshot(r.app.Snapshot(), r.clients, r.conf)
	if snap != nil {
		*snap = b
	}
	return sha256.Sum256(b)
}

// StateDigest returns the digest of the current replicated state, for tests and tools
// that compare replicas.
func (r *Replica) StateDigest() Digest { return r.stateDigest(nil) }

func (r *Replica) inWindow(seq uint64) bool {
	return seq > r.lowWater && seq <= r.lowWater+r.cfg.LogWindow
}

func (r *Replica) entryAt(seq uint64) *entry {
	e := r.log[seq]
	if e == nil {
		e = &entry{seq: seq}
		r.log[seq] = e
		if seq > r.maxSeq {
			r.maxSeq = seq
		}
	}
	return e
}
