package jsonl

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Object is a JSON object whose keys keep the order they were added in,
// matching a Python dict. Duplicate keys are written as given.
type Object []Field

// Field is one key/value pair of an Object.
type Field struct {
	Key   string
	Value any
}

// Append appends v to dst formatted exactly as Python's json.dumps(v) with
// default settings and returns the extended slice.
//
// Supported types are string, bool, nil, int, int64, uint64, Object, []Object,
// []string and []any whose elements are themselves supported. Nil slices and
// nil Objects are written as [] and {} (Python has no nil list). Any other
// type is a programming error and panics.
//
// Strings are escaped as with ensure_ascii=True: `"` and `\` are
// backslash-escaped; \n \r \t \b \f use their short forms; every other
// character outside printable ASCII (U+0020 to U+007E) — including other
// control characters and DEL — becomes \uXXXX with lower-case hex, and
// characters above U+FFFF become a UTF-16 surrogate pair. `<`, `>`, `&` and
// `/` are literal. A lone surrogate carried as generalized UTF-8 (how the
// decoder keeps \ud800) is written as its \uXXXX escape, as Python writes it;
// other invalid UTF-8 bytes are written as \ufffd, one per byte, like
// encoding/json, so the output is always ASCII JSON.
func Append(dst []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return appendString(dst, v)
	case bool:
		if v {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case nil:
		return append(dst, "null"...)
	case int:
		return strconv.AppendInt(dst, int64(v), 10)
	case int64:
		return strconv.AppendInt(dst, v, 10)
	case uint64:
		return strconv.AppendUint(dst, v, 10)
	case Object:
		return appendObject(dst, v)
	case []Object:
		dst = append(dst, '[')
		for i, o := range v {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendObject(dst, o)
		}
		return append(dst, ']')
	case []string:
		dst = append(dst, '[')
		for i, s := range v {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendString(dst, s)
		}
		return append(dst, ']')
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = Append(dst, e)
		}
		return append(dst, ']')
	default:
		panic(fmt.Sprintf("jsonl: Append: unsupported type %T", v))
	}
}

func appendObject(dst []byte, o Object) []byte {
	dst = append(dst, '{')
	for i, f := range o {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = appendString(dst, f.Key)
		dst = append(dst, ": "...)
		dst = Append(dst, f.Value)
	}
	return append(dst, '}')
}

// literal reports the bytes Python's ensure_ascii encoder copies unchanged:
// printable ASCII except '"' and '\'.
var literal = func() (t [256]bool) {
	for c := ' '; c <= '~'; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef" // Python writes lower-case \u escapes

func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is a pending run of literal bytes, copied in one go
	for i := 0; i < len(s); {
		c := s[i]
		if literal[c] {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default: // other control characters and DEL
				dst = appendU(dst, rune(c))
			}
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:]) // RuneError, 1 for invalid bytes
			if r == utf8.RuneError && size == 1 {
				if sr, ok := surrogateAt(s[i:]); ok {
					r, size = sr, 3 // a lone surrogate from the input, escaped again as Python does
				}
			}
			if r >= 0x10000 {
				r -= 0x10000
				dst = appendU(dst, 0xd800|(r>>10)&0x3ff)
				dst = appendU(dst, 0xdc00|r&0x3ff)
			} else {
				dst = appendU(dst, r)
			}
			i += size
		}
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendU appends \uXXXX for r <= 0xFFFF.
func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u',
		hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}
