// Package jsonl is the gateway's client wire format: one JSON object per line,
//
//	{"src": S, "dest": D, "body": {...}}
//
// Decoding (Parse and the Line accessors) is lenient about layout and strict
// about types, using encoding/json. Encoding (Append) reproduces exactly what
// Python's json.dumps(obj) writes with default settings — ", " and ": "
// separators, ensure_ascii escaping, keys in insertion order — because clients
// and golden test files compare replies byte for byte.
package jsonl
