package golden

import (
	"strings"
	"testing"
)

func TestOutputMatching(t *testing.T) {
	const okLine = `{"src": "n1", "dest": "c1", "body": {"type": "error", "in_reply_to": 2, "code": 10, "text": "…", "msg_id": 2}}`
	for _, tc := range []struct {
		name, want, got string
		ok              bool
	}{
		{"equal", "a\nb\n", "a\nb\n", true},
		{"both empty", "", "", true},
		{"missing line", "a\nb\n", "a\n", false},
		{"extra line", "a\n", "a\nb\n", false},
		{"no final newline", "a\nb\n", "a\nb", false},
		{"crlf is a line break", "a\nb\n", "a\r\nb\r\n", true},
		{"wildcard string", okLine + "\n", strings.Replace(okLine, `"…"`, `"unknown message type \"x\""`, 1) + "\n", true},
		{"wildcard empty string", okLine + "\n", strings.Replace(okLine, `"…"`, `""`, 1) + "\n", true},
		{"wildcard escapes", okLine + "\n", strings.Replace(okLine, `"…"`, `"a\\b \u00e9"`, 1) + "\n", true},
		{"wildcard needs a string", okLine + "\n", strings.Replace(okLine, `"…"`, `12`, 1) + "\n", false},
		{"wildcard needs a single string", okLine + "\n", strings.Replace(okLine, `"…"`, `"a", "x": "b"`, 1) + "\n", false},
		{"rest still exact", okLine + "\n", strings.Replace(strings.Replace(okLine, `"…"`, `"t"`, 1), `"code": 10`, `"code": 11`, 1) + "\n", false},
		{"regexp characters are literal", `{"a": [1.5], "t": "…"}` + "\n", `{"a": [105], "t": "x"}` + "\n", false},
		{"two wildcards", `["…", 1, "…"]` + "\n", `["x", 1, "y"]` + "\n", true},
		{"literal ellipsis matches itself", `"…"` + "\n", `"…"` + "\n", true},
	} {
		msg := Diff(tc.want, []byte(tc.got))
		if (msg == "") != tc.ok {
			t.Errorf("%s: Diff(%q, %q) = %q, want match=%v", tc.name, tc.want, tc.got, msg, tc.ok)
		}
	}
	if got := SplitLines("a\n\nb\rc\r\n"); strings.Join(got, "|") != "a||b|c" {
		t.Errorf("splitLines = %q", got)
	}
}
