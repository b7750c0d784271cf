package jsonl

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// Expected outputs were worked out from CPython's json.encoder rules
// (ESCAPE_ASCII = r'([\\"]|[^\ -~])', ESCAPE_DCT, '\\u{0:04x}', surrogate
// pairs for n > 0xFFFF) and double-checked against python3 json.dumps.
func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"hello world", `"hello world"`},
		{"é", `"\u00e9"`},
		{"naïve café", `"na\u00efve caf\u00e9"`},
		{"€", `"\u20ac"`},
		{"\u00a0", `"\u00a0"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"\ufeff", `"\ufeff"`},
		{"\uffff", `"\uffff"`},
		{"😀", `"\ud83d\ude00"`},
		{"\U00010000", `"\ud800\udc00"`},
		{"\U0010ffff", `"\udbff\udfff"`},
		{"a😀b", `"a\ud83d\ude00b"`},
		{"<a&b>", `"<a&b>"`},
		{"/", `"/"`},
		{"</script>", `"</script>"`},
		{`"`, `"\""`},
		{`\`, `"\\"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"\n", `"\n"`},
		{"\r", `"\r"`},
		{"\t", `"\t"`},
		{"\b", `"\b"`},
		{"\f", `"\f"`},
		{"\x00", `"\u0000"`},
		{"\x01", `"\u0001"`},
		{"\x0b", `"\u000b"`},
		{"\x1b", `"\u001b"`},
		{"\x1f", `"\u001f"`},
		// Python escapes DEL too: it is outside the literal range ' '..'~'.
		{"\x7f", `"\u007f"`},
		{" ~", `" ~"`},
		{"line1\nline2\ttab", `"line1\nline2\ttab"`},
		// Invalid UTF-8 (Python strings cannot hold it): U+FFFD per bad byte.
		{"\xff", `"\ufffd"`},
		{"a\xc3", `"a\ufffd"`},
		{"\xed\xa0\x80", `"\ud800"`}, // a lone surrogate the decoder kept
		{"\xed\xbf\xbf", `"\udfff"`},
		{"\xed\xa0", `"\ufffd\ufffd"`}, // cut short: just invalid bytes
		{"\xed\x9f\xbf", `"\ud7ff"`},   // U+D7FF is valid UTF-8
		{"\ufffd", `"\ufffd"`},
	}
	for _, tt := range tests {
		got := string(Append(nil, tt.in))
		if got != tt.want {
			t.Errorf("Append(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if got := string(Append(nil, Object{{tt.in, 1}})); got != "{"+tt.want+": 1}" {
			t.Errorf("key %q: %s", tt.in, got)
		}
	}
}

func TestAppendValues(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"nil", nil, `null`},
		{"true", true, `true`},
		{"false", false, `false`},
		{"int", 42, `42`},
		{"zero", 0, `0`},
		{"negative int", -7, `-7`},
		{"int64 min", int64(math.MinInt64), `-9223372036854775808`},
		{"uint64 max", uint64(math.MaxUint64), `18446744073709551615`},
		{"empty object", Object{}, `{}`},
		{"nil object", Object(nil), `{}`},
		{"object keeps order", Object{{"z", 1}, {"a", 2}, {"m", 3}}, `{"z": 1, "a": 2, "m": 3}`},
		{"nested object", Object{{"a", Object{{"b", Object{}}}}}, `{"a": {"b": {}}}`},
		{"null field", Object{{"x", nil}}, `{"x": null}`},
		{"empty list", []any{}, `[]`},
		{"nil list", []any(nil), `[]`},
		{"list", []any{1, 2}, `[1, 2]`},
		{"mixed list", []any{"a", true, nil, int64(-1), uint64(2), Object{{"k", "v"}}, []string{"x"}}, `["a", true, null, -1, 2, {"k": "v"}, ["x"]]`},
		{"nested lists", []any{[]any{}, []any{[]any{1}}}, `[[], [[1]]]`},
		{"strings", []string{"n1", "n2"}, `["n1", "n2"]`},
		{"empty strings", []string{}, `[]`},
		{"nil strings", []string(nil), `[]`},
		{"objects", []Object{{{"a", 1}}, {}}, `[{"a": 1}, {}]`},
		{"nil objects", []Object(nil), `[]`},
		{"escaped list", []string{"é", "\n"}, `["\u00e9", "\n"]`},
	}
	for _, tt := range tests {
		if got := string(Append(nil, tt.in)); got != tt.want {
			t.Errorf("%s: Append = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestAppendAppends(t *testing.T) {
	got := Append([]byte("prefix:"), Object{{"a", "b"}})
	if string(got) != `prefix:{"a": "b"}` {
		t.Fatalf("got %s", got)
	}
}

func TestAppendPanicsOnUnsupported(t *testing.T) {
	for _, v := range []any{1.5, int32(1), uint(1), map[string]any{}, []int{1}, struct{}{}, &Object{}, Field{}, []any{1.0}, Object{{"k", float32(1)}}} {
		func() {
			defer func() {
				r := recover()
				if r == nil {
					t.Errorf("Append(%T) did not panic", v)
				} else if !strings.Contains(fmt.Sprint(r), "unsupported type") {
					t.Errorf("Append(%T) panic = %v", v, r)
				}
			}()
			Append(nil, v)
		}()
	}
}

func ExampleAppend() {
	reply := Object{
		{"src", "n1"},
		{"dest", "c1"},
		{"body", Object{
			{"type", "pbft_status_ok"},
			{"in_reply_to", 3},
			{"phase", "committed"},
			{"prepares_received", 3},
			{"commits_received", 4},
			{"executed", true},
			{"msg_id", 2},
		}},
	}
	os.Stdout.Write(append(Append(nil, reply), '\n'))
	// Output:
	// {"src": "n1", "dest": "c1", "body": {"type": "pbft_status_ok", "in_reply_to": 3, "phase": "committed", "prepares_received": 3, "commits_received": 4, "executed": true, "msg_id": 2}}
}

func ExampleAppend_listOfObjects() {
	status := Object{
		{"replicas", []Object{
			{{"node", "n1"}, {"view", 0}},
			{{"node", "n2"}, {"view", 0}},
		}},
	}
	fmt.Println(string(Append(nil, status)))
	// Output:
	// {"replicas": [{"node": "n1", "view": 0}, {"node": "n2", "view": 0}]}
}

// pyEscape is an independent, deliberately naive transcription of CPython's
// py_encode_basestring_ascii, used as a differential oracle by the fuzzer.
func pyEscape(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		// A surrogate code point in generalized UTF-8 (how the decoder keeps a lone
		// \ud800) is what Python holds as a lone surrogate: it writes the escape.
		if i+2 < len(s) && s[i] == 0xed && s[i+1]&0xe0 == 0xa0 && s[i+2]&0xc0 == 0x80 {
			fmt.Fprintf(&b, `\u%04x`, 0xd000|int(s[i+1]&0x3f)<<6|int(s[i+2]&0x3f))
			i += 3
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:]) // U+FFFD per invalid byte, as Append does
		i += size
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '"':
			b.WriteString(`\"`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r >= ' ' && r <= '~':
			b.WriteRune(r)
		case r > 0xffff:
			n := r - 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800|(n>>10)&0x3ff, 0xdc00|n&0x3ff)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "abc", "é", "😀", "<a&b>", "\x7f", "\x01", "\"\\/", "\xff", "\xed\xa0\x80", "\U0010ffff", "a\xf0\x9f\x98"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Append(nil, s)
		if !json.Valid(out) {
			t.Fatalf("Append(%q) = %s is not valid JSON", s, out)
		}
		for _, c := range out {
			if c < ' ' || c > '~' {
				t.Fatalf("Append(%q) = %q contains non-printable-ASCII byte %#x", s, out, c)
			}
		}
		if want := pyEscape(s); string(out) != want {
			t.Fatalf("Append(%q) = %s, oracle says %s", s, out, want)
		}
		if utf8.ValidString(s) {
			var back string
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatalf("Unmarshal(%s): %v", out, err)
			}
			if back != s {
				t.Fatalf("round trip %q -> %s -> %q", s, out, back)
			}
		}
	})
}

func BenchmarkAppendReply(b *testing.B) {
	reply := Object{
		{"src", "n1"},
		{"dest", "c1"},
		{"body", Object{
			{"type", "pbft_status_ok"},
			{"in_reply_to", 3},
			{"phase", "committed"},
			{"prepares_received", 3},
			{"commits_received", 4},
			{"executed", true},
			{"result", "value with é and \"quotes\""},
			{"msg_id", 2},
		}},
	}
	// Box once: converting the Object slice to any allocates, and real
	// callers pay that once per reply, not inside Append.
	var v any = reply
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], v)
	}
}
