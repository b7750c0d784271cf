package jsonl

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func mustParse(t *testing.T, line string) *Line {
	t.Helper()
	l, err := Parse([]byte(line))
	if err != nil {
		t.Fatalf("Parse(%s): %v", line, err)
	}
	return l
}

func TestParse(t *testing.T) {
	l := mustParse(t, `{"src":"c1","dest":"n1","body":{"type":"pbft_request","msg_id":1,"operation":"set x=1","client":"c1"}}`+"\r\n")
	if l.Src != "c1" || l.Dest != "n1" || l.Type != "pbft_request" || string(l.MsgID) != "1" {
		t.Fatalf("got %+v", l)
	}
	if len(l.Body) != 4 || string(l.Body["operation"]) != `"set x=1"` {
		t.Fatalf("body %v", l.Body)
	}
}

func TestParseLoose(t *testing.T) {
	tests := []struct {
		name, line            string
		src, dest, typ, msgID string
	}{
		{"whitespace everywhere", ` { "src" : "a" , "dest" : "b" , "body" : { "type" : "t" , "msg_id" :  7  } } `, "a", "b", "t", "7"},
		{"missing src/dest/type/msg_id", `{"body":{}}`, "", "", "", ""},
		{"non-string src/dest/type", `{"src":1,"dest":null,"body":{"type":["x"]}}`, "", "", "", ""},
		{"null msg_id is present", `{"body":{"msg_id":null}}`, "", "", "", "null"},
		{"string msg_id kept raw", `{"body":{"msg_id":"3"}}`, "", "", "", `"3"`},
		{"escapes decoded", `{"src":"\u00e9\n","body":{"type":"a\"b"}}`, "é\n", "", `a"b`, ""},
		{"duplicate keys: last wins", `{"src":"a","src":"b","body":{"type":"x","type":"y"}}`, "b", "", "y", ""},
		{"invalid utf-8 replaced", "{\"src\":\"a\xffb\",\"body\":{}}", "a\ufffdb", "", "", ""},
		{"extra top-level fields", `{"src":"a","id":5,"body":{},"x":[1]}`, "a", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustParse(t, tt.line)
			if l.Src != tt.src || l.Dest != tt.dest || l.Type != tt.typ || string(l.MsgID) != tt.msgID {
				t.Fatalf("got src=%q dest=%q type=%q msg_id=%q", l.Src, l.Dest, l.Type, l.MsgID)
			}
			if tt.msgID == "" && l.MsgID != nil {
				t.Fatalf("absent msg_id should be nil, got %q", l.MsgID)
			}
		})
	}
}

// Line must not alias the input: the gateway reuses its read buffer.
func TestParseDoesNotAlias(t *testing.T) {
	buf := []byte(`{"body":{"msg_id":12345,"x":"abc"}}`)
	l, err := Parse(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = ' '
	}
	if string(l.MsgID) != "12345" || string(l.Body["x"]) != `"abc"` {
		t.Fatalf("Line aliases input: %q %q", l.MsgID, l.Body["x"])
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		line string
		want error
	}{
		{"", ErrNotJSON},
		{"   ", ErrNotJSON},
		{"this is not json", ErrNotJSON},
		{"null", ErrNotJSON},
		{"[1,2]", ErrNotJSON},
		{`"str"`, ErrNotJSON},
		{"42", ErrNotJSON},
		{"{", ErrNotJSON},
		{`{"body":{}} trailing`, ErrNotJSON},
		{`{"body":{}}{"body":{}}`, ErrNotJSON},
		{`{"body":{}`, ErrNotJSON},
		{`{'body':{}}`, ErrNotJSON},
		{"{\"body\":{\"x\":\"\x00\"}}", ErrNotJSON}, // raw control char in string
		{strings.Repeat("[", 20000), ErrNotJSON},    // deep nesting: error, not stack overflow
		{`{}`, ErrNoBody},
		{`{"src":"c1","dest":"n1"}`, ErrNoBody},
		{`{"body":null}`, ErrNoBody},
		{`{"body":[]}`, ErrNoBody},
		{`{"body":"x"}`, ErrNoBody},
		{`{"body":1}`, ErrNoBody},
		{`{"Body":{}}`, ErrNoBody}, // keys are case-sensitive
	}
	for _, tt := range tests {
		l, err := Parse([]byte(tt.line))
		if !errors.Is(err, tt.want) || l != nil {
			t.Errorf("Parse(%.40q) = %v, %v; want %v", tt.line, l, err, tt.want)
		}
	}
}

func TestMsgIDInt(t *testing.T) {
	tests := []struct {
		raw  string // "" means absent
		want int64
		ok   bool
	}{
		{"1", 1, true},
		{"0", 0, true},
		{"-5", -5, true},
		{"9223372036854775807", math.MaxInt64, true},
		{"-9223372036854775808", math.MinInt64, true},
		{"9223372036854775808", 0, false},
		{"1.0", 0, false},
		{"1e3", 0, false},
		{`"1"`, 0, false},
		{"null", 0, false},
		{"true", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		line := `{"body":{}}`
		if tt.raw != "" {
			line = `{"body":{"msg_id": ` + tt.raw + ` }}`
		}
		got, ok := mustParse(t, line).MsgIDInt()
		if got != tt.want || ok != tt.ok {
			t.Errorf("msg_id %s: got %d, %v; want %d, %v", tt.raw, got, ok, tt.want, tt.ok)
		}
	}
}

func body(t *testing.T, fields string) *Line {
	t.Helper()
	return mustParse(t, `{"body":{`+fields+`}}`)
}

func checkErr(t *testing.T, what string, err error, wantErr bool, key string) {
	t.Helper()
	switch {
	case wantErr && !errors.Is(err, ErrBadField):
		t.Errorf("%s: err = %v, want ErrBadField", what, err)
	case wantErr && !strings.Contains(err.Error(), `"`+key):
		t.Errorf("%s: error %q does not name the field %q", what, err, key)
	case !wantErr && err != nil:
		t.Errorf("%s: unexpected error %v", what, err)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		raw     string // "" means absent
		want    string
		present bool
		err     bool
	}{
		{`"abc"`, "abc", true, false},
		{`""`, "", true, false},
		{`"\u00e9\ud83d\ude00"`, "é😀", true, false},
		{"", "", false, false},
		{"null", "", false, false},
		{"1", "", true, true},
		{"true", "", true, true},
		{`["a"]`, "", true, true},
		{`{"a":"b"}`, "", true, true},
	}
	for _, tt := range tests {
		fields := `"other":1`
		if tt.raw != "" {
			fields = `"operation":` + tt.raw
		}
		got, present, err := body(t, fields).String("operation")
		if got != tt.want || present != tt.present {
			t.Errorf("operation=%s: got %q, %v; want %q, %v", tt.raw, got, present, tt.want, tt.present)
		}
		checkErr(t, "operation="+tt.raw, err, tt.err, "operation")
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		raw     string
		want    []string
		present bool
		err     bool
	}{
		{`["n1","n2","n3","n4"]`, []string{"n1", "n2", "n3", "n4"}, true, false},
		{`[]`, []string{}, true, false},
		{`[ "a" , "\n" ]`, []string{"a", "\n"}, true, false},
		{"", nil, false, false},
		{"null", nil, false, false},
		{`"n1"`, nil, true, true},
		{`{"a":"b"}`, nil, true, true},
		{`["n1",2]`, nil, true, true},
		{`["n1",null]`, nil, true, true},
		{`[["n1"]]`, nil, true, true},
	}
	for _, tt := range tests {
		fields := `"other":1`
		if tt.raw != "" {
			fields = `"node_ids":` + tt.raw
		}
		got, present, err := body(t, fields).Strings("node_ids")
		if !slices.Equal(got, tt.want) || present != tt.present || (tt.want != nil) != (got != nil) {
			t.Errorf("node_ids=%s: got %#v, %v; want %#v, %v", tt.raw, got, present, tt.want, tt.present)
		}
		checkErr(t, "node_ids="+tt.raw, err, tt.err, "node_ids")
	}
	_, _, err := body(t, `"node_ids":["a",null]`).Strings("node_ids")
	if err == nil || !strings.Contains(err.Error(), `"node_ids[1]"`) {
		t.Errorf("error %v should name the bad element", err)
	}
}

func TestPositiveInt(t *testing.T) {
	tests := []struct {
		raw     string
		want    uint64
		present bool
		err     bool
	}{
		{"1", 1, true, false},
		{"42", 42, true, false},
		{"18446744073709551615", math.MaxUint64, true, false},
		{"18446744073709551616", math.MaxUint64, true, false},
		{strings.Repeat("9", 400), math.MaxUint64, true, false},
		{"", 0, false, false},
		{"null", 0, false, false},
		{"0", 0, true, true},
		{"-1", 0, true, true},
		{"-0", 0, true, true},
		{"1.0", 0, true, true},
		{"1.5", 0, true, true},
		{"1e3", 0, true, true},
		{"1E3", 0, true, true},
		{`"one"`, 0, true, true},
		{`"1"`, 0, true, true},
		{"true", 0, true, true},
		{"[1]", 0, true, true},
		{"{}", 0, true, true},
	}
	for _, tt := range tests {
		fields := `"other":1`
		if tt.raw != "" {
			fields = `"sequence_number":` + tt.raw
		}
		got, present, err := body(t, fields).PositiveInt("sequence_number")
		if got != tt.want || present != tt.present {
			t.Errorf("sequence_number=%.30s: got %d, %v; want %d, %v", tt.raw, got, present, tt.want, tt.present)
		}
		checkErr(t, "sequence_number="+tt.raw, err, tt.err, "sequence_number")
	}
}

// Accessors must cope with a Line built by hand rather than by Parse.
func TestAccessorsOnHandBuiltLine(t *testing.T) {
	var l Line
	if _, ok := l.MsgIDInt(); ok {
		t.Error("MsgIDInt on empty Line")
	}
	if _, p, err := l.String("x"); p || err != nil {
		t.Error("String on empty Line")
	}
	l.Body = map[string]json.RawMessage{"n": json.RawMessage(" 5 "), "s": json.RawMessage(` "x" `), "e": {}}
	l.MsgID = json.RawMessage(" 9 ")
	if n, p, err := l.PositiveInt("n"); n != 5 || !p || err != nil {
		t.Errorf("PositiveInt = %d %v %v", n, p, err)
	}
	if s, p, err := l.String("s"); s != "x" || !p || err != nil {
		t.Errorf("String = %q %v %v", s, p, err)
	}
	if _, p, err := l.Strings("e"); p || err != nil {
		t.Errorf("Strings on empty raw = %v %v", p, err)
	}
	if n, ok := l.MsgIDInt(); n != 9 || !ok {
		t.Errorf("MsgIDInt = %d %v", n, ok)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"src":"c1","dest":"n1","body":{"type":"pbft_request","msg_id":1,"operation":"set x=1","client":"c1"}}`,
		`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}`,
		`{"src":"c1","dest":"n1","body":{"type":"pbft_status","msg_id":4,"sequence_number":"one"}}`,
		`{"body":{"sequence_number":1e400,"msg_id":-0,"node_ids":[null]}}`,
		"this is not json",
		"{\"body\":{\"x\":\"\xff\"}}",
		`null`,
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
		if json.Valid(line) == false {
			t.Fatalf("Parse accepted invalid JSON %q", line)
		}
		if n, ok := l.MsgIDInt(); ok && string(l.MsgID) != "-0" {
			if b, _ := json.Marshal(n); string(b) != string(l.MsgID) {
				t.Fatalf("MsgIDInt %d from %q", n, l.MsgID)
			}
		}
		keys := []string{"type", "msg_id", "operation", "node_ids", "sequence_number", "missing"}
		for k := range l.Body {
			keys = append(keys, k)
		}
		for _, k := range keys {
			s, p, err := l.String(k)
			if err != nil && (!p || s != "" || !errors.Is(err, ErrBadField)) {
				t.Fatalf("String(%q) = %q, %v, %v", k, s, p, err)
			}
			ss, p, err := l.Strings(k)
			if err != nil && (!p || ss != nil || !errors.Is(err, ErrBadField)) {
				t.Fatalf("Strings(%q) = %q, %v, %v", k, ss, p, err)
			}
			if err == nil && p && ss == nil {
				t.Fatalf("Strings(%q) present but nil", k)
			}
			n, p, err := l.PositiveInt(k)
			if err != nil && (!p || n != 0 || !errors.Is(err, ErrBadField)) {
				t.Fatalf("PositiveInt(%q) = %d, %v, %v", k, n, p, err)
			}
			if err == nil && p && n < 1 {
				t.Fatalf("PositiveInt(%q) = %d", k, n)
			}
		}
	})
}
