package trace

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Drawing of the Diagram's blocks: rows of columns with lifelines, arrows and marks.

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

func (d *Diagram) paint(kind, s string) string {
	if !d.color || ansi[kind] == "" {
		return s
	}
	return ansi[kind] + s + "\x1b[0m"
}

// lifeline is column i's line in the block being printed: dotted while it is crashed.
func (d *Diagram) lifeline(i int) rune {
	if i == 0 {
		return '│'
	}
	f, ok := d.faultAt(d.cols[i], d.at)
	if !ok {
		f = d.faults[d.cols[i]]
	}
	if f == "crash" {
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
		if f := d.faults[c]; i > 0 && f != "" && f != "none" {
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
	d.at = b.t
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
	if b.cont {
		title += " (continued)"
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
