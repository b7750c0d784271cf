package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Sentinel errors; returned errors wrap them, so test with errors.Is.
var (
	// ErrNotJSON: the line is not a single JSON object.
	ErrNotJSON = errors.New("jsonl: line is not a JSON object")
	// ErrNoBody: the line has no "body" or it is not an object.
	ErrNoBody = errors.New(`jsonl: missing or non-object "body"`)
	// ErrBadField: a body field is present but has the wrong type.
	ErrBadField = errors.New("jsonl: bad field")
)

// Line is one decoded input line. It does not alias the bytes passed to Parse,
// so the caller may reuse its read buffer.
type Line struct {
	Src, Dest string                     // "" if absent or not a string
	Body      map[string]json.RawMessage // the body object's fields, undecoded
	Type      string                     // body.type if it is a string, else ""
	MsgID     json.RawMessage            // body.msg_id as written (nil if absent)
}

// Parse decodes one line (surrounding whitespace, including a trailing \r\n, is
// ignored). A line that is not exactly one JSON object — including an empty
// line — yields an error wrapping ErrNotJSON; an object without an object
// "body" yields ErrNoBody. Neither can be answered, since there is no body to
// reply to. Invalid UTF-8 inside strings decodes as U+FFFD; a lone surrogate escape
// survives as generalized UTF-8 (see unquote).
func Parse(line []byte) (*Line, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(line, &top); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	if top == nil { // the literal null decodes without error
		return nil, ErrNotJSON
	}
	var body map[string]json.RawMessage
	raw, ok := top["body"]
	if !ok {
		return nil, ErrNoBody
	}
	if err := json.Unmarshal(raw, &body); err != nil || body == nil {
		return nil, ErrNoBody
	}
	l := &Line{
		Src:   asString(top["src"]),
		Dest:  asString(top["dest"]),
		Body:  body,
		Type:  asString(body["type"]),
		MsgID: body["msg_id"],
	}
	return l, nil
}

// asString returns raw decoded as a string, or "" if it is anything else.
func asString(raw json.RawMessage) string {
	if kind(raw) != "string" {
		return ""
	}
	s, _ := unquote(bytes.TrimSpace(raw))
	return s
}

// MsgIDInt returns msg_id as an int64 if it is a JSON integer literal (no
// fraction or exponent) that fits; ok is false otherwise.
func (l *Line) MsgIDInt() (int64, bool) {
	raw := bytes.TrimSpace(l.MsgID)
	if !isIntLiteral(raw) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil { // out of range; ParseInt would return the clamped value
		return 0, false
	}
	return n, true
}

// field returns the body field, or nil if it is absent or JSON null, which
// clients use interchangeably for "not given".
func (l *Line) field(key string) json.RawMessage {
	raw := bytes.TrimSpace(l.Body[key]) // trimmed in case Body was built by hand
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

// String returns body[key] as a string. present is false if the field is
// absent or null; err wraps ErrBadField if it is present but not a string.
func (l *Line) String(key string) (string, bool, error) {
	raw := l.field(key)
	if raw == nil {
		return "", false, nil
	}
	if k := kind(raw); k != "string" {
		return "", true, badField(key, "string", k)
	}
	s, ok := unquote(bytes.TrimSpace(raw))
	if !ok {
		return "", true, badField(key, "string", "invalid JSON")
	}
	return s, true, nil
}

// Strings returns body[key] as a list of strings (non-nil when present).
// present is false if the field is absent or null; err wraps ErrBadField if it
// is not an array or any element is not a string (null elements included).
func (l *Line) Strings(key string) ([]string, bool, error) {
	raw := l.field(key)
	if raw == nil {
		return nil, false, nil
	}
	if k := kind(raw); k != "array" {
		return nil, true, badField(key, "array of strings", k)
	}
	// Decode element by element: unmarshalling straight into []string would
	// silently turn null elements into "".
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, true, badField(key, "array of strings", "invalid JSON")
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		if k := kind(e); k != "string" {
			return nil, true, badField(fmt.Sprintf("%s[%d]", key, i), "string", k)
		}
		var ok bool
		if out[i], ok = unquote(bytes.TrimSpace(e)); !ok {
			return nil, true, badField(fmt.Sprintf("%s[%d]", key, i), "string", "invalid JSON")
		}
	}
	return out, true, nil
}

// PositiveInt returns body[key] as a JSON integer literal >= 1 (no sign,
// fraction or exponent; 1.0 is rejected). Integers too large for uint64 yield
// math.MaxUint64 without error: callers treat them as "far in the future".
// present is false if the field is absent or null; err wraps ErrBadField if it
// is anything else.
func (l *Line) PositiveInt(key string) (uint64, bool, error) {
	raw := l.field(key)
	if raw == nil {
		return 0, false, nil
	}
	// JSON has no leading zeros, so a literal starting 1-9 with only digits
	// is exactly an integer >= 1.
	if !isIntLiteral(raw) || raw[0] < '1' || raw[0] > '9' {
		got := kind(raw)
		if got == "number" {
			got = "number " + truncate(raw)
		}
		return 0, true, badField(key, "positive integer", got)
	}
	n, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil { // only ErrRange is possible here
		return math.MaxUint64, true, nil
	}
	return n, true, nil
}

// isIntLiteral reports whether raw is -?[0-9]+ (it is already valid JSON, so
// leading zeros cannot occur).
func isIntLiteral(raw []byte) bool {
	if len(raw) > 0 && raw[0] == '-' {
		raw = raw[1:]
	}
	if len(raw) == 0 {
		return false
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// kind names the JSON type of raw for error messages and type checks.
func kind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	default:
		return "number"
	}
}

func truncate(raw []byte) string {
	if len(raw) > 24 {
		return string(raw[:24]) + "..."
	}
	return string(raw)
}

func badField(key, want, got string) error {
	return fmt.Errorf("%w %q: want %s, got %s", ErrBadField, key, want, got)
}
