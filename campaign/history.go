package campaign

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Kind is a client operation on the key-value store.
type Kind string

// The operations of the gateway's key-value facade.
const (
	KindSet Kind = "set" // PUT /v1/kv/{key}: 204
	KindGet Kind = "get" // GET /v1/kv/{key}: 200 and the value; 404 when absent (recorded as "")
	KindDel Kind = "del" // DELETE /v1/kv/{key}: 204, also when absent
)

// Status is how an operation completed, in Jepsen's terms.
type Status string

// Completion statuses.
const (
	// StatusOK: the gateway acknowledged the operation (2xx).
	StatusOK Status = "ok"
	// StatusFail: the operation certainly did not take effect (4xx).
	StatusFail Status = "fail"
	// StatusInfo: indeterminate (timeout, connection error, 5xx); it may or may not
	// have taken effect, at any time from its invocation on.
	StatusInfo Status = "info"
)

// Op is one operation of the history: a client's invocation and its completion.
type Op struct {
	// Process is the logical process that ran the operation. As in Jepsen, a client
	// whose operation ends indeterminate continues as a new process, since the old
	// one may still be in flight.
	Process int    `json:"process"`
	Client  int    `json:"client"`
	Kind    Kind   `json:"kind"`
	Key     string `json:"key"`
	// Value is the value written (set) or the value read (get, ok only).
	Value  string `json:"value,omitempty"`
	Status Status `json:"status"`
	// Invoke and Complete are offsets from the start of the run.
	Invoke   time.Duration `json:"invoke_ns"`
	Complete time.Duration `json:"complete_ns"`
	HTTP     int           `json:"http,omitempty"`
	Error    string        `json:"error,omitempty"`
	// Seq and Replies are the gateway's X-PBFT-Seq and X-PBFT-Replies.
	Seq     uint64 `json:"seq,omitempty"`
	Replies int    `json:"replies,omitempty"`
	// OrderedAsked marks a get sent with ?ordered=true; Ordered is X-PBFT-Ordered (an
	// ordered request answered it: asked, or the read-only path fell back).
	OrderedAsked bool `json:"ordered_asked,omitempty"`
	Ordered      bool `json:"ordered,omitempty"`
	// Final marks the reads of every key after the faults healed.
	Final bool `json:"final,omitempty"`
}

// Latency is the operation's duration.
func (o Op) Latency() time.Duration { return o.Complete - o.Invoke }

// History records operations from concurrent clients.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewHistory starts a history whose times are offsets from start.
func NewHistory(start time.Time) *History { return &History{start: start} }

// Since is the offset of t from the start of the history.
func (h *History) Since(t time.Time) time.Duration { return t.Sub(h.start) }

// Now is the current offset.
func (h *History) Now() time.Duration { return time.Since(h.start) }

// Add records a completed operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns the operations ordered by invocation.
func (h *History) Ops() []Op {
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	h.mu.Unlock()
	slices.SortStableFunc(ops, func(a, b Op) int { return cmp.Compare(a.Invoke, b.Invoke) })
	return ops
}

// Counts tallies operations by status.
type Counts struct {
	Total         int `json:"total"`
	OK            int `json:"ok"`
	Fail          int `json:"fail"`
	Indeterminate int `json:"indeterminate"`
	// By kind: ok / fail / indeterminate.
	ByKind map[Kind][3]int `json:"by_kind"`
	Reads  ReadPaths       `json:"reads"`
}

// ReadPaths counts the gets (the final reads too) by the path they were sent on and
// the one that answered them (X-PBFT-Ordered).
type ReadPaths struct {
	// SentReadOnly gets went without ?ordered: ReadOnly were answered on the read-only
	// path, Fallback by an ordered request after its replies did not agree in time.
	SentReadOnly int `json:"sent_read_only"`
	ReadOnly     int `json:"read_only"`
	Fallback     int `json:"fallback"`
	// SentOrdered gets went with ?ordered=true; Ordered were answered.
	SentOrdered int `json:"sent_ordered"`
	Ordered     int `json:"ordered"`
}

func (r ReadPaths) String() string {
	return fmt.Sprintf("%d read-only (%d answered there, %d fell back to ordering, %d unanswered), %d ordered (%d answered, %d unanswered)",
		r.SentReadOnly, r.ReadOnly, r.Fallback, r.SentReadOnly-r.ReadOnly-r.Fallback, r.SentOrdered, r.Ordered, r.SentOrdered-r.Ordered)
}

func (r *ReadPaths) add(o Op) {
	answered := o.Status == StatusOK
	switch {
	case o.OrderedAsked:
		r.SentOrdered++
		if answered {
			r.Ordered++
		}
	default:
		r.SentReadOnly++
		switch {
		case answered && o.Ordered:
			r.Fallback++
		case answered:
			r.ReadOnly++
		}
	}
}

// CountOps tallies ops.
func CountOps(ops []Op) Counts {
	c := Counts{ByKind: map[Kind][3]int{}}
	for _, o := range ops {
		c.Total++
		k := c.ByKind[o.Kind]
		switch o.Status {
		case StatusOK:
			c.OK++
			k[0]++
		case StatusFail:
			c.Fail++
			k[1]++
		default:
			c.Indeterminate++
			k[2]++
		}
		c.ByKind[o.Kind] = k
		if o.Kind == KindGet {
			c.Reads.add(o)
		}
	}
	return c
}
