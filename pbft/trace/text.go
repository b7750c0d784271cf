package trace

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Diagram prints trace events as a text sequence diagram, the terminal twin of the
// gateway's live page: one column per replica (and one for the client), one block per
// round (view, sequence number) with a line per message sender and phase, and marks
// where replicas prepared, committed and executed. Events of a round are held until the
// round has been quiet for Quiet (or is older than MaxAge), so that its lines come out
// in protocol order although the replicas' events arrive interleaved. It is not safe for
// concurrent use.
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
}

type pendingRequest struct {
	from, to, client string
	at               time.Time
}

type block struct {
	key        string
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

// Phases in the order a round's lines are printed.
var roundOrder = []string{"request", "preprepare", "prepare", Prepared, "commit", Committed, Executed, "reply"}

const (
	labelWidth = 13
	colWidth   = 11
)

var ansi = map[string]string{
	"request": "\x1b[35m", "preprepare": "\x1b[33m", "prepare": "\x1b[34m", Prepared: "\x1b[34m",
	"commit": "\x1b[32m", Committed: "\x1b[32m", Executed: "\x1b[1m", "reply": "\x1b[31m",
	"checkpoint": "\x1b[36m", "viewchange": "\x1b[95m", "newview": "\x1b[95m",
}

// Add takes one event, received at now.
func (d *Diagram) Add(e Event, now time.Time) {
	switch e.Type {
	case Replica:
		d.faults[e.Node] = e.Fault
		return
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
		p := ""
		if n := len(d.cols) - 1; n > 0 {
			p = d.cols[1+int(e.View%uint64(n))]
		}
		b := d.band(fmt.Sprintf("vc:%d", e.View), fmt.Sprintf("view change to view %d (primary %s)", e.View, p), e, now)
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
			d.pending = append(d.pending, pendingRequest{from: e.From, to: e.Node, client: e.Client, at: now})
		}
		return
	case "preprepare", "prepare", "commit", "reply":
	case "viewchange", "newview":
		if e.Type == Recv {
			b := d.band(fmt.Sprintf("vc:%d", e.View), "", e, now)
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
		if now.Sub(p.at) > d.MaxAge {
			return true
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

func (d *Diagram) newBlock(key string, e Event, now time.Time) *block {
	b := &block{key: key, first: now, upd: now, t: e.T, msgs: map[string]map[string]map[string]bool{},
		marks: map[string]map[string]int{}, bandTo: map[string]string{}}
	d.byKey[key] = b
	d.blocks = append(d.blocks, b)
	return b
}

func (d *Diagram) roundBlock(e Event, now time.Time) *block {
	key := fmt.Sprintf("r:%d:%d", e.View, e.Seq)
	b := d.byKey[key]
	if b == nil {
		b = d.newBlock(key, e, now)
		b.round, b.view, b.seq = true, e.View, e.Seq
	}
	b.upd = now
	return b
}

func (d *Diagram) latestRound(seq uint64, def *block) *block {
	best := def
	for _, b := range d.blocks {
		if b.round && b.seq == seq && b.view > best.view && len(b.msgs) > 0 {
			best = b
		}
	}
	if best != def && len(def.msgs) == 0 && len(def.marks) == 0 {
		d.drop(def)
	}
	return best
}

func (d *Diagram) drop(b *block) {
	delete(d.byKey, b.key)
	d.blocks = slices.DeleteFunc(d.blocks, func(x *block) bool { return x == b })
}

func (d *Diagram) band(key, title string, e Event, now time.Time) *block {
	b := d.byKey[key]
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
		delete(d.byKey, b.key)
		n++
	}
	d.blocks = slices.Delete(d.blocks, 0, n)
	return nil
}

func (d *Diagram) paint(kind, s string) string {
	if !d.color || ansi[kind] == "" {
		return s
	}
	return ansi[kind] + s + "\x1b[0m"
}

func (d *Diagram) lifeline(i int) rune {
	if i > 0 && d.faults[d.cols[i]] == "crash" {
		return '┊'
	}
	return '│'
}

// row draws one line: symbols at some columns, a dash between the leftmost and the
// rightmost of them, lifelines elsewhere, then a note.
func (d *Diagram) row(label string, sym map[int]string, kind, note string) string {
	lo, hi := len(d.cols), -1
	for i := range sym {
		lo, hi = min(lo, i), max(hi, i)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, " %-*s", labelWidth-1, label)
	for i := range d.cols {
		cell := []rune(strings.Repeat(" ", colWidth))
		if i > lo && i <= hi {
			for j := 0; j < colWidth/2; j++ {
				cell[j] = '─'
			}
		}
		if i >= lo && i < hi {
			for j := colWidth / 2; j < colWidth; j++ {
				cell[j] = '─'
			}
		}
		s, ok := sym[i]
		if ok {
			r := []rune(s)
			copy(cell[colWidth/2:], r)
		} else if i < lo || i > hi {
			cell[colWidth/2] = d.lifeline(i)
		} else {
			cell[colWidth/2] = '┼'
		}
		part := string(cell)
		if i >= lo && i <= hi {
			part = d.paint(kind, part)
		}
		sb.WriteString(part)
	}
	if note != "" {
		sb.WriteString(" ")
		sb.WriteString(note)
	}
	return strings.TrimRight(sb.String(), " ") + "\n"
}

func (d *Diagram) header() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, " %-*s", labelWidth-1, "")
	for i, c := range d.cols {
		name := c
		if i > 0 && d.faults[c] != "" {
			name += "!"
		}
		pad := colWidth/2 - len([]rune(name))/2
		sb.WriteString(strings.Repeat(" ", max(pad, 0)))
		sb.WriteString(name)
		sb.WriteString(strings.Repeat(" ", max(colWidth-pad-len([]rune(name)), 0)))
	}
	return strings.TrimRight(sb.String(), " ") + "\n"
}

var phaseLabel = map[string]string{"request": "request", "preprepare": "pre-prepare", "prepare": "prepare",
	Prepared: "prepared", "commit": "commit", Committed: "committed", Executed: "executed", "reply": "reply",
	"viewchange": "view-change", "newview": "new-view"}

func (d *Diagram) print(b *block) error {
	var out strings.Builder
	if d.printed%8 == 0 {
		out.WriteString(d.header())
	}
	if b.note {
		if d.printed == 0 {
			d.printed++
		}
		_, err := io.WriteString(d.w, out.String()+b.title+"\n")
		return err
	}
	d.printed++
	if !b.round {
		out.WriteString(d.paint("viewchange", "═══ "+b.title) + "\n")
		for _, k := range []string{"viewchange", "newview"} {
			out.WriteString(d.senders(b, k))
		}
		sym := map[int]string{}
		var notes []string
		for _, c := range sortedCols(d, b.bandTo) {
			sym[d.col[c]] = "◉"
			notes = append(notes, c+" "+b.bandTo[c])
		}
		if len(sym) > 0 {
			out.WriteString(d.row("", sym, "newview", strings.Join(notes, ", ")))
		}
		_, err := io.WriteString(d.w, out.String())
		return err
	}
	title := fmt.Sprintf("─── #%d view %d", b.seq, b.view)
	if b.digest != (Short{}) {
		title += " d=" + b.digest.String()
	}
	if b.batch > 0 {
		title += fmt.Sprintf(" (%d request", b.batch)
		if b.batch > 1 {
			title += "s"
		}
		title += ")"
	}
	if b.primary != "" {
		title += " primary " + b.primary
	}
	if b.digest == (Short{}) && b.view > 0 {
		title += " (pre-prepared by the new-view)"
	}
	out.WriteString(title + "\n")
	for _, k := range roundOrder {
		switch k {
		case Prepared, Committed, Executed:
			m := b.marks[k]
			if len(m) == 0 {
				continue
			}
			sym := map[int]string{}
			for c, n := range m {
				if _, ok := d.col[c]; !ok {
					continue
				}
				s := map[string]string{Prepared: "◆", Committed: "●", Executed: "■"}[k]
				if q := d.quorum(k); q > 0 && n > 0 {
					s += fmt.Sprintf("%d/%d", n, q)
				}
				sym[d.col[c]] = s
			}
			out.WriteString(d.marks(k, sym))
		default:
			out.WriteString(d.senders(b, k))
		}
	}
	_, err := io.WriteString(d.w, out.String())
	return err
}

func (d *Diagram) quorum(k string) int {
	switch k {
	case Prepared:
		return 2 * d.f
	case Committed:
		return 2*d.f + 1
	}
	return 0
}

// marks draws marks without the dash between them.
func (d *Diagram) marks(kind string, sym map[int]string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, " %-*s", labelWidth-1, phaseLabel[kind])
	for i := range d.cols {
		cell := []rune(strings.Repeat(" ", colWidth))
		if s, ok := sym[i]; ok {
			copy(cell[colWidth/2:], []rune(s))
			sb.WriteString(d.paint(kind, string(cell)))
			continue
		}
		cell[colWidth/2] = d.lifeline(i)
		sb.WriteString(string(cell))
	}
	return strings.TrimRight(sb.String(), " ") + "\n"
}

// senders draws one line per sender of kind in b: ● at the sender, an arrowhead at each
// receiver it reached.
func (d *Diagram) senders(b *block, kind string) string {
	m := b.msgs[kind]
	if len(m) == 0 {
		return ""
	}
	var out strings.Builder
	if kind == "reply" {
		// All replies go to the client: one line.
		sym := map[int]string{}
		for from, tos := range m {
			if _, ok := d.col[from]; ok {
				sym[d.col[from]] = "●"
			}
			for to := range tos {
				sym[d.col[d.clientCol(to)]] = "◀"
			}
		}
		out.WriteString(d.row(phaseLabel[kind], sym, kind, fmt.Sprintf("%d replies", len(m))))
		return out.String()
	}
	for _, from := range sortedCols(d, m) {
		sym := map[int]string{d.col[from]: "●"}
		for to := range m[from] {
			i, ok := d.col[to]
			if !ok {
				continue
			}
			if i > d.col[from] {
				sym[i] = "▶"
			} else {
				sym[i] = "◀"
			}
		}
		label := phaseLabel[kind]
		note := ""
		if kind == "request" && len(b.clients) > 0 {
			note = strings.Join(b.clients, ",")
		}
		out.WriteString(d.row(label, sym, kind, note))
	}
	return out.String()
}

// sortedCols lists the keys of m that are columns, in column order.
func sortedCols[V any](d *Diagram, m map[string]V) []string {
	var out []string
	for k := range m {
		if _, ok := d.col[k]; ok {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Compare(d.col[a], d.col[b]) })
	return out
}
