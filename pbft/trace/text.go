package trace

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"time"
)

// Diagram prints trace events as a text sequence diagram, the terminal twin of the
// gateway's live page: one column per replica (and one for the client), one block per
// round (view, sequence number) with a line per message sender and phase, and marks
// where replicas prepared, committed and executed. Events of a round are held until the
// round has been quiet for Quiet (or is older than MaxAge), so that its lines come out
// in protocol order although the replicas' events arrive interleaved. A fault switch
// (Switch) divides time: events after it go into new blocks printed after it, so a round
// held open across a crash or a recovery does not show what came later as if it came
// before. It is not safe for concurrent use.
type Diagram struct {
	// Quiet is how long a block waits for more events before it is printed; MaxAge
	// prints it anyway.
	Quiet, MaxAge time.Duration

	w       io.Writer
	color   bool
	cols    []string
	col     map[string]int
	f       int
	blocks  []*block
	byKey   map[string]*block
	pending []pendingRequest
	faults  map[string]string
	printed int

	// switches are the fault switches, in time order: a block holds the events of one
	// epoch, between two switches.
	switches []faultSwitch
	// carried are the rounds held open at the last switch, by key without epoch: their
	// continuation after it keeps their title.
	carried map[string]*block
	at      int64 // the time of the block being printed, for the lifelines
}

// faultSwitch is a replica's behaviour from time t (Unix nanoseconds) on.
type faultSwitch struct {
	t           int64
	node, fault string
}

type pendingRequest struct {
	from, to, client string
	at               time.Time
	epoch            int // of its delivery: a request delivered before a switch is not drawn after it
}

type block struct {
	key        string
	epoch      int
	cont       bool // continues a round held open across a fault switch
	first, upd time.Time
	t          int64 // replica time of the first event, to order blocks
	round      bool
	view, seq  uint64
	digest     Short
	batch      int
	primary    string
	title      string
	// msgs: phase -> sender -> receivers (deliveries)
	msgs    map[string]map[string]map[string]bool
	marks   map[string]map[string]int // prepared/committed/executed -> node -> count
	bandTo  map[string]string         // band: node -> what it did
	note    bool                      // a line of text (Note)
	clients []string
}

// NewDiagram returns a diagram of the replicas nodes (in order) and the client column
// client, written to w, with ANSI colours if color is set.
func NewDiagram(w io.Writer, client string, nodes []string, color bool) *Diagram {
	d := &Diagram{Quiet: 300 * time.Millisecond, MaxAge: 3 * time.Second, w: w, color: color,
		col: map[string]int{}, byKey: map[string]*block{}, faults: map[string]string{}, f: (len(nodes) - 1) / 3}
	d.cols = append([]string{client}, nodes...)
	for i, c := range d.cols {
		d.col[c] = i
	}
	return d
}

// Add takes one event, received at now.
func (d *Diagram) Add(e Event, now time.Time) {
	switch e.Type {
	case Replica:
		d.faults[e.Node] = e.Fault
		return
	}
	// Nothing of a crashed replica is drawn while it is crashed: neither what it stamped
	// (late events of the switch) nor what others received from it (in flight then).
	if d.crashedAt(e.Node, e.T) || (e.Type == Recv && d.crashedAt(e.From, e.T)) {
		return
	}
	switch e.Type {
	case Recv, Send:
		if e.Fault != "" && e.Type == Send {
			d.faults[e.Node] = e.Fault
		}
		d.message(e, now)
	case Prepared, Committed, Executed:
		b := d.roundBlock(e, now)
		if e.Type == Executed {
			// Executed names no view: it belongs to the latest round of its number.
			b = d.latestRound(e.Seq, b)
		}
		if b.marks[e.Type] == nil {
			b.marks[e.Type] = map[string]int{}
		}
		b.marks[e.Type][e.Node] = e.Count
	case Checkpoint, Transfer:
		title := fmt.Sprintf("checkpoint #%d stable", e.Seq)
		if e.Type == Transfer {
			title = fmt.Sprintf("state transfer to #%d", e.Seq)
		}
		b := d.band(fmt.Sprintf("%s:%d", e.Type, e.Seq), title, e, now)
		b.bandTo[e.Node] = "stable"
		if e.Type == Transfer {
			b.bandTo[e.Node] = "installed"
		}
	case ViewChange, NewView:
		b := d.band(fmt.Sprintf("vc:%d", e.View), d.viewChangeTitle(e.View), e, now)
		if e.Type == ViewChange {
			if b.bandTo[e.Node] == "" {
				b.bandTo[e.Node] = "started"
			}
		} else {
			b.bandTo[e.Node] = fmt.Sprintf("in view %d", e.View)
		}
	}
}

func (d *Diagram) message(e Event, now time.Time) {
	switch e.Kind {
	case "request":
		if e.Type == Recv {
			d.pending = append(d.pending, pendingRequest{from: e.From, to: e.Node, client: e.Client, at: now, epoch: d.epoch(e.T)})
		}
		return
	case "preprepare", "prepare", "commit", "reply":
	case "viewchange", "newview":
		if e.Type == Recv {
			b := d.band(fmt.Sprintf("vc:%d", e.View), d.viewChangeTitle(e.View), e, now)
			b.deliver(e.Kind, e.From, e.Node)
		}
		return
	default:
		return
	}
	b := d.roundBlock(e, now)
	switch {
	case e.Kind == "preprepare":
		if b.digest == (Short{}) {
			b.digest, b.batch = e.Digest, e.Count
			if e.Type == Send {
				b.primary = e.Node
			} else {
				b.primary = e.From
			}
		}
		d.order(b, e.Client, now)
		if e.Type == Recv {
			b.deliver(e.Kind, e.From, e.Node)
		}
	case e.Kind == "reply" && e.Type == Send:
		b.deliver(e.Kind, e.Node, d.clientCol(e.To))
	case e.Type == Recv:
		b.deliver(e.Kind, e.From, e.Node)
	}
}

func (d *Diagram) viewChangeTitle(view uint64) string {
	p := ""
	if n := len(d.cols) - 1; n > 0 {
		p = d.cols[1+int(view%uint64(n))]
	}
	return fmt.Sprintf("view change to view %d (primary %s)", view, p)
}

func (d *Diagram) clientCol(name string) string {
	if _, ok := d.col[name]; ok {
		return name
	}
	return d.cols[0]
}

// order moves the deliveries of client's requests into the round whose pre-prepare
// orders them.
func (d *Diagram) order(b *block, client string, now time.Time) {
	if client == "" {
		return
	}
	d.pending = slices.DeleteFunc(d.pending, func(p pendingRequest) bool {
		if now.Sub(p.at) > d.MaxAge || p.epoch < b.epoch {
			return true
		}
		if p.epoch > b.epoch {
			return false
		}
		if p.client != client {
			return false
		}
		b.deliver("request", d.clientCol(p.from), p.to)
		if !slices.Contains(b.clients, client) {
			b.clients = append(b.clients, client)
		}
		return true
	})
}

func (b *block) deliver(kind, from, to string) {
	if b.msgs[kind] == nil {
		b.msgs[kind] = map[string]map[string]bool{}
	}
	if b.msgs[kind][from] == nil {
		b.msgs[kind][from] = map[string]bool{}
	}
	b.msgs[kind][from][to] = true
}

// newBlock starts the block key of the epoch of e.
func (d *Diagram) newBlock(key string, e Event, now time.Time) *block {
	b := &block{key: key, epoch: d.epoch(e.T), first: now, upd: now, t: e.T, msgs: map[string]map[string]map[string]bool{},
		marks: map[string]map[string]int{}, bandTo: map[string]string{}}
	d.byKey[d.epochKey(key, b.epoch)] = b
	d.blocks = append(d.blocks, b)
	return b
}

func (d *Diagram) roundBlock(e Event, now time.Time) *block {
	key := fmt.Sprintf("r:%d:%d", e.View, e.Seq)
	b := d.byKey[d.epochKey(key, d.epoch(e.T))]
	if b == nil {
		b = d.newBlock(key, e, now)
		b.round, b.view, b.seq = true, e.View, e.Seq
		if old := d.carried[key]; old != nil && old.epoch < b.epoch {
			b.cont, b.digest, b.batch, b.primary = true, old.digest, old.batch, old.primary
		}
	}
	b.upd = now
	return b
}

func (d *Diagram) latestRound(seq uint64, def *block) *block {
	best := def
	for _, b := range d.blocks {
		if b.round && b.seq == seq && b.epoch == def.epoch && b.view > best.view && len(b.msgs) > 0 {
			best = b
		}
	}
	if best != def && len(def.msgs) == 0 && len(def.marks) == 0 {
		d.drop(def)
	}
	return best
}

func (d *Diagram) drop(b *block) {
	delete(d.byKey, d.epochKey(b.key, b.epoch))
	d.blocks = slices.DeleteFunc(d.blocks, func(x *block) bool { return x == b })
}

func (d *Diagram) band(key, title string, e Event, now time.Time) *block {
	b := d.byKey[d.epochKey(key, d.epoch(e.T))]
	if b == nil {
		b = d.newBlock(key, e, now)
	}
	if title != "" {
		b.title = title
	}
	b.upd = now
	return b
}

// Note adds a line of text, printed among the blocks in the order of its time.
func (d *Diagram) Note(text string, now time.Time) {
	b := d.newBlock(fmt.Sprintf("note:%d:%d", now.UnixNano(), len(d.blocks)), Event{T: now.UnixNano()}, now)
	b.note, b.title = true, text
	b.upd = now.Add(-d.Quiet) // nothing more will come
}

// Switch records that replica node switched to behaviour fault ("none" when it
// recovers) at now, with text printed at that point of the sequence. Events of node
// stamped while it is crashed are not drawn, and events stamped after the switch go into
// blocks of their own, printed after text.
func (d *Diagram) Switch(node, fault, text string, now time.Time) {
	d.carried = map[string]*block{}
	for _, b := range d.blocks {
		if b.round {
			d.carried[b.key] = b
		}
	}
	t := now.UnixNano()
	i := len(d.switches)
	for i > 0 && d.switches[i-1].t > t {
		i--
	}
	d.switches = slices.Insert(d.switches, i, faultSwitch{t: t, node: node, fault: fault})
	d.faults[node] = fault
	d.Note(text, now)
}

// epoch is the number of fault switches at or before t.
func (d *Diagram) epoch(t int64) int {
	n := 0
	for _, s := range d.switches {
		if s.t <= t {
			n++
		}
	}
	return n
}

func (d *Diagram) epochKey(key string, epoch int) string {
	if epoch == 0 {
		return key
	}
	return fmt.Sprintf("%s@%d", key, epoch)
}

// faultAt is node's behaviour at t by the switches; false if none was recorded.
func (d *Diagram) faultAt(node string, t int64) (string, bool) {
	for i := len(d.switches) - 1; i >= 0; i-- {
		if s := d.switches[i]; s.node == node && s.t <= t {
			return s.fault, true
		}
	}
	return "", false
}

func (d *Diagram) crashedAt(node string, t int64) bool {
	f, ok := d.faultAt(node, t)
	return ok && f == "crash"
}

// Flush prints the blocks that are complete: quiet for Quiet, or older than MaxAge, or
// all of them if force is set. Blocks come out in the order of their first event.
func (d *Diagram) Flush(now time.Time, force bool) error {
	slices.SortStableFunc(d.blocks, func(a, b *block) int { return cmp.Compare(a.t, b.t) })
	n := 0
	for _, b := range d.blocks {
		if !force && now.Sub(b.upd) < d.Quiet && now.Sub(b.first) < d.MaxAge {
			break
		}
		if err := d.print(b); err != nil {
			return err
		}
		if d.byKey[d.epochKey(b.key, b.epoch)] == b {
			delete(d.byKey, d.epochKey(b.key, b.epoch))
		}
		n++
	}
	d.blocks = slices.Delete(d.blocks, 0, n)
	return nil
}
