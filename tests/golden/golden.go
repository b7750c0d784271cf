// Package golden compares a gateway's stdout with a golden .out file: line by line,
// where a "…" string stands for any JSON string. The in-process and multi-process tests
// use it, and Run drives a built gateway binary through the cases (cmd/run-cases, which
// CI runs).
package golden

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// anyString is the pattern that a "…" in a golden .out line stands for: one JSON string.
const anyString = `"(?:[^"\\]|\\.)*"`

// wildcard is how a golden line writes "any string here".
const wildcard = `"…"`

// SplitLines splits s as Python's str.splitlines does (no keepends): on \n, \r\n, \r,
// \v, \f, \x1c, \x1d, \x1e, \x85, U+2028 and U+2029; a final line terminator does not
// start an empty last line.
func SplitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch r {
		case '\n', '\r', '\v', '\f', '\x1c', '\x1d', '\x1e', '\u0085', '\u2028', '\u2029':
			out = append(out, s[start:i])
			i += size
			if r == '\r' && i < len(s) && s[i] == '\n' {
				i++
			}
			start = i
			continue
		}
		i += size
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// decodeReplace turns bytes into text as Python's decode("utf-8", "replace") does, for
// the purpose of the comparison: every invalid byte becomes U+FFFD.
func decodeReplace(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			sb.WriteRune(utf8.RuneError)
			b = b[max(size, 1):]
			continue
		}
		sb.WriteRune(r)
		b = b[size:]
	}
	return sb.String()
}

// lineMatches reports whether got matches the golden line want: equal, or equal where
// each "…" of want stands for any JSON string.
func lineMatches(want, got string) bool {
	if want == got {
		return true
	}
	if !strings.Contains(want, wildcard) {
		return false
	}
	parts := strings.Split(want, wildcard)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	re, err := regexp.Compile(`\A(?:` + strings.Join(parts, anyString) + `)\z`)
	if err != nil {
		return false
	}
	return re.MatchString(got)
}

// Diff compares a gateway's whole stdout with a golden .out file: the same number of
// lines, each matching, and a non-empty output must end with a newline. It returns ""
// on a match, else what differs.
func Diff(want string, gotBytes []byte) string {
	got := decodeReplace(gotBytes)
	w, g := SplitLines(want), SplitLines(got)
	var diff string
	for i := 0; i < max(len(w), len(g)); i++ {
		wl, gl := "<end>", "<end>"
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if i >= len(w) || i >= len(g) || !lineMatches(wl, gl) {
			diff = fmt.Sprintf("first difference at line %d:\n  want: %s\n  got:  %s", i+1, wl, gl)
			break
		}
	}
	switch {
	case diff != "":
		return diff
	case got != "" && !strings.HasSuffix(got, "\n"):
		return "stdout does not end with a newline"
	}
	return ""
}
