// Package trace carries a live picture of the protocol out of the replicas: each replica
// emits Events (messages sent and received, certificates formed, batches executed,
// checkpoints, view changes) to a Publisher, which batches them onto the bus's trace
// subject from its own goroutine. Tracing is off unless PBFT_TRACE=on, and when on it
// never slows the protocol: Emit never blocks (a full buffer drops and counts), the
// publisher keeps to an event budget per second, and under load whole rounds are
// sampled: only sequence numbers that are multiples of a power of two are traced, so the
// rounds that are shown are complete, and every replica's sample contains the sample of
// any replica that samples more sparsely.
//
// The loop of a replica that traces:
//
//	p := trace.NewPublisher(transport.PublishTrace, trace.Options{})
//	stop := p.Start()
//	defer stop()
//	...
//	if p.Sampled(seq) {
//		p.Emit(trace.Event{Type: trace.Send, Kind: "prepare", Seq: seq, ...})
//	}
package trace

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// Event types.
const (
	Send       = "send"       // a message left the replica (To "*" is a broadcast)
	Recv       = "recv"       // an authenticated message was stepped into the replica
	Prepared   = "prepared"   // pre-prepare plus 2f matching prepares (Count: prepares)
	Committed  = "committed"  // 2f+1 matching commits (Count: commits)
	Executed   = "executed"   // the batch at Seq was applied
	Transfer   = "transfer"   // state transfer jumped execution to Seq
	Checkpoint = "checkpoint" // the checkpoint at Seq became stable
	ViewChange = "viewchange" // the replica started changing to View
	NewView    = "newview"    // the replica entered View with Primary
	Replica    = "replica"    // a periodic summary of the replica (heartbeat)
)

// Broadcast is Event.To of a message sent to every other replica.
const Broadcast = "*"

// Short is the first bytes of a digest, enough to tell batches apart on a page.
type Short [4]byte

// MarshalText writes the hex digits; the zero value is empty.
func (s Short) MarshalText() ([]byte, error) {
	if s == (Short{}) {
		return []byte{}, nil
	}
	return []byte(hex.EncodeToString(s[:])), nil
}

// UnmarshalText reads what MarshalText wrote.
func (s *Short) UnmarshalText(b []byte) error {
	*s = Short{}
	if len(b) == 0 {
		return nil
	}
	if len(b) != 2*len(s) {
		return fmt.Errorf("trace: digest prefix %q is not %d hex digits", b, 2*len(s))
	}
	_, err := hex.Decode(s[:], b)
	return err
}

func (s Short) String() string { b, _ := s.MarshalText(); return string(b) }

// ShortOf returns the prefix of a 32-byte digest.
func ShortOf(d [32]byte) Short { return Short(d[:4]) }

// Event is one thing a replica did. Fields that do not apply to a Type are zero and left
// out of the JSON.
type Event struct {
	T    int64  `json:"t"`    // Unix nanoseconds at the replica
	Node string `json:"node"` // the replica that emitted it
	Type string `json:"type"`
	// Kind is the message kind of a Send or Recv (request, preprepare, prepare, commit,
	// reply, checkpoint, viewchange, newview, fetch, state).
	Kind   string `json:"kind,omitempty"`
	View   uint64 `json:"view"`
	Seq    uint64 `json:"seq,omitempty"`
	Digest Short  `json:"digest,omitzero"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	// Client names the client of a request or reply.
	Client string `json:"client,omitempty"`
	// Count is the batch size of a pre-prepare, or the certificate size of Prepared and
	// Committed.
	Count int `json:"count,omitempty"`
	// Fault is the sender's built-in behaviour when it is not honest.
	Fault string `json:"fault,omitempty"`
	// Replica summary (Type Replica; Primary also on NewView).
	Primary      string `json:"primary,omitempty"`
	Active       bool   `json:"active,omitempty"`
	LastExecuted uint64 `json:"last_executed,omitempty"`
	Stable       uint64 `json:"stable,omitempty"`
	Dropped      uint64 `json:"dropped,omitempty"` // events this replica dropped so far
	SampleEvery  uint64 `json:"sample_every,omitempty"`
}

// Decode parses one trace message: newline-separated JSON events. Blank lines are
// skipped; a malformed line is an error (the events before it are returned).
func Decode(data []byte) ([]Event, error) {
	var out []Event
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return out, fmt.Errorf("trace: bad event: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Switch is an on/off setting (PBFT_TRACE, PBFT_PPROF): on, off, true, false, 1, 0, yes, no.
type Switch bool

// Decode parses a PBFT_TRACE value (package config calls it).
func (s *Switch) Decode(v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "on", "true", "1", "yes":
		*s = true
	case "off", "false", "0", "no", "":
		*s = false
	default:
		return fmt.Errorf("trace: %q is not on or off", v)
	}
	return nil
}

func (s Switch) String() string {
	if s {
		return "on"
	}
	return "off"
}
