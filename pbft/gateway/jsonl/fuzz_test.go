package jsonl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
)

// addCaseLines seeds f with every line of the golden inputs: real client traffic.
func addCaseLines(f *testing.F) {
	for _, dir := range []string{"../../../testdata/cases", "../testdata/cases"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.in"))
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				f.Add(slices.Clone(sc.Bytes()))
			}
		}
	}
}

// encodable converts a value decoded by encoding/json (with UseNumber) into what Append
// supports: objects become Objects with sorted keys (a decoded map has no order), and
// numbers become int64 or uint64. ok is false for what Append cannot write: fractions,
// exponents, and integers beyond 64 bits.
func encodable(v any) (any, bool) {
	switch v := v.(type) {
	case nil, bool, string:
		return v, true
	case json.Number:
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return n, true
		}
		if n, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return n, true
		}
		return nil, false
	case []any:
		out := make([]any, 0, len(v))
		for _, e := range v {
			c, ok := encodable(e)
			if !ok {
				return nil, false
			}
			out = append(out, c)
		}
		return out, true
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out := make(Object, 0, len(v))
		for _, k := range keys {
			c, ok := encodable(v[k])
			if !ok {
				return nil, false
			}
			out = append(out, Field{Key: k, Value: c})
		}
		return out, true
	}
	panic("unexpected decoded type")
}

// decodeRaw decodes a field as Line's accessors see it: a string (alone or in an array)
// through unquote, which keeps lone surrogates; anything else with encoding/json.
func decodeRaw(t *testing.T, raw json.RawMessage) any {
	switch kind(raw) {
	case "string":
		s, ok := unquote(bytes.TrimSpace(raw))
		if !ok {
			t.Fatalf("a string field Parse kept does not decode: %q", raw)
		}
		return s
	case "array":
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			t.Fatalf("an array field Parse kept does not decode: %q: %v", raw, err)
		}
		out := make([]any, len(elems))
		for i, e := range elems {
			out[i] = decodeRaw(t, e)
		}
		return out
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("a field Parse kept does not decode: %q: %v", raw, err)
	}
	return v
}

// reencode writes l back as a line: src and dest if they are strings, and every body
// field Append can write (in sorted key order). It returns the line and the body keys
// it kept.
func reencode(t *testing.T, l *Line) ([]byte, []string) {
	top := Object{}
	if l.Src != "" {
		top = append(top, Field{Key: "src", Value: l.Src})
	}
	if l.Dest != "" {
		top = append(top, Field{Key: "dest", Value: l.Dest})
	}
	keys := make([]string, 0, len(l.Body))
	for k := range l.Body {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	body := Object{}
	var kept []string
	for _, k := range keys {
		if c, ok := encodable(decodeRaw(t, l.Body[k])); ok {
			body = append(body, Field{Key: k, Value: c})
			kept = append(kept, k)
		}
	}
	top = append(top, Field{Key: "body", Value: body})
	return Append(nil, top), kept
}

type accessors struct {
	S        string
	SP       bool
	SErr     bool
	SS       []string
	SSP      bool
	SSErr    bool
	N        uint64
	NP       bool
	NErr     bool
	Semantic any
}

func access(t *testing.T, l *Line, k string) accessors {
	var a accessors
	var err error
	a.S, a.SP, err = l.String(k)
	a.SErr = err != nil
	a.SS, a.SSP, err = l.Strings(k)
	a.SSErr = err != nil
	a.N, a.NP, err = l.PositiveInt(k)
	a.NErr = err != nil
	if raw, ok := l.Body[k]; ok {
		a.Semantic, _ = encodable(decodeRaw(t, raw))
	}
	return a
}

// FuzzRoundTrip: whatever Parse accepts re-encodes (Append) to a line that Parse accepts
// again with the same src, dest, type and msg_id, and on which every accessor gives the
// same answer for every field that was re-encoded; the re-encoding is printable ASCII and
// a fixed point (encoding the re-parsed line gives the same bytes). Fields Append cannot
// write (fractions, exponents, integers beyond 64 bits) are left out; everything else a
// client can send survives a round trip exactly, including escapes and invalid UTF-8
// (which Parse turns into U+FFFD).
func FuzzRoundTrip(f *testing.F) {
	addCaseLines(f)
	for _, s := range []string{
		`{"src":"c1","dest":"n1","body":{"type":"pbft_status","msg_id":5,"sequence_number":18446744073709551615}}`,
		`{"src":"\u00e9\ud83d\ude00\"\\/\b\f\n\r\t\u0001\u007f","dest":"<&>","body":{"type":"init","node_ids":["a",1,null,true,{"x":[]}],"msg_id":-9223372036854775808}}`,
		`{"body":{"msg_id":-0,"n":1e2,"big":123456789012345678901234567890,"f":1.5,"o":{"b":1,"a":{"c":[-1]}}}}`,
		"{\"src\":\"a\xffb\xc3\",\"body\":{\"type\":\"\xed\xa0\x80\",\"k\":\"\\ud800\\udc00\\udfff\"}}",
		`{"src":1,"dest":["n1"],"body":{"src":"x","type":7,"msg_id":"1"}}`,
		` {"body":{"type":"a","type":"b"},"src":"x","src":"y"} ` + "\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		l, err := Parse(line)
		if err != nil {
			if l != nil || !(errors.Is(err, ErrNotJSON) || errors.Is(err, ErrNoBody)) {
				t.Fatalf("Parse error %v with line %v", err, l)
			}
			return
		}
		out, kept := reencode(t, l)
		for _, c := range out {
			if c < 0x20 || c > 0x7e {
				t.Fatalf("re-encoding has byte %#x outside printable ASCII: %q", c, out)
			}
		}
		l2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoding %q does not parse: %v", out, err)
		}
		if l2.Src != l.Src || l2.Dest != l.Dest {
			t.Fatalf("src/dest %q/%q became %q/%q via %q", l.Src, l.Dest, l2.Src, l2.Dest, out)
		}
		if len(l2.Body) != len(kept) {
			t.Fatalf("re-encoded body has %d fields, want %d (%q)", len(l2.Body), len(kept), out)
		}
		for _, k := range kept {
			a, b := access(t, l, k), access(t, l2, k)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("field %q: %+v became %+v via %q", k, a, b, out)
			}
		}
		if slices.Contains(kept, "type") && l2.Type != l.Type {
			t.Fatalf("type %q became %q", l.Type, l2.Type)
		}
		if slices.Contains(kept, "msg_id") {
			n, ok := l.MsgIDInt()
			n2, ok2 := l2.MsgIDInt()
			if n != n2 || ok != ok2 {
				t.Fatalf("msg_id %q (%d %v) became %q (%d %v)", l.MsgID, n, ok, l2.MsgID, n2, ok2)
			}
		}
		again, _ := reencode(t, l2)
		if !bytes.Equal(again, out) {
			t.Fatalf("re-encoding is not a fixed point:\n%q\n%q", out, again)
		}
	})
}
