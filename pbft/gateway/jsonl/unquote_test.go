package jsonl

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestUnquoteKeepsLoneSurrogates(t *testing.T) {
	tests := []struct{ raw, want string }{
		{`"plain"`, "plain"},
		{`"\u00e9\ud83d\ude00\/\"\\\b\f\n\r\t"`, "é😀/\"\\\b\f\n\r\t"},
		{`"a\ud800b"`, "a\xed\xa0\x80b"},          // lone high surrogate
		{`"\udfff"`, "\xed\xbf\xbf"},              // lone low surrogate
		{`"\ud800\u0041"`, "\xed\xa0\x80A"},       // high surrogate, then no low one
		{`"\ud800\ud800\udc00"`, "\xed\xa0\x80𐀀"}, // lone high, then a pair
		{`"\udc00\ud800"`, "\xed\xb0\x80\xed\xa0\x80"},
		{"\"a\xffb\"", "a\uFFFDb"}, // invalid UTF-8 in the input, as encoding/json
	}
	for _, tt := range tests {
		got, ok := unquote([]byte(tt.raw))
		if !ok || got != tt.want {
			t.Errorf("unquote(%s) = %q, %v; want %q", tt.raw, got, ok, tt.want)
		}
		if back, _ := unquote(Append(nil, got)); back != got {
			t.Errorf("round trip of %s: %q became %q via %s", tt.raw, got, back, Append(nil, got))
		}
	}
	for _, bad := range []string{``, `"`, `"\x"`, `"a`, `5`, `"\ud8"`} {
		if _, ok := unquote([]byte(bad)); ok {
			t.Errorf("unquote(%s) accepted", bad)
		}
	}
}

// FuzzUnquote: for every JSON string literal, unquote agrees with encoding/json except
// that a lone surrogate stays (encoding/json makes it U+FFFD), and what it returns
// re-encodes with Append to a literal that unquotes to the same string.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`"a"`, `"\ud800"`, `"\ud83d\ude00"`, `"\udc00\ud800x"`, "\"\xed\xa0\x80\"", `"\u0000\/"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var std string
		if json.Unmarshal([]byte(raw), &std) != nil || strings.TrimSpace(raw) != raw {
			return
		}
		got, ok := unquote([]byte(raw))
		if !ok {
			t.Fatalf("unquote(%q) refused what encoding/json decodes", raw)
		}
		var b strings.Builder
		for i := 0; i < len(got); {
			if _, ok := surrogateAt(got[i:]); ok {
				b.WriteRune('\uFFFD')
				i += 3
				continue
			}
			b.WriteByte(got[i])
			i++
		}
		if b.String() != std {
			t.Fatalf("unquote(%q) = %q; encoding/json %q", raw, got, std)
		}
		if back, ok := unquote(Append(nil, got)); !ok || back != got {
			t.Fatalf("%q re-encoded as %s unquotes to %q", got, Append(nil, got), back)
		}
	})
}
