package jsonscan

import "encoding/binary"

// maxDepth is encoding/json's nesting limit: a body that Go's decoder (and so an
// upstream written in Go) refuses for depth is refused here too.
const maxDepth = 10000

// Valid reports whether b is exactly one JSON value, as encoding/json.Valid does: the
// same grammar, the same nesting limit, and, like it, no UTF-8 check inside strings.
// It is one pass that skips plain string bytes eight at a time, so Scan can validate
// the body while it looks for the routing fields instead of reading it twice.
func Valid(b []byte) bool {
	i := value(b, skipWS(b, 0), 0)
	return i >= 0 && skipWS(b, i) == len(b)
}

// value returns the index just past the valid JSON value that starts at b[i], or -1.
// depth is the number of objects and arrays that enclose it.
func value(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return str(b, i)
	case '{':
		if depth++; depth > maxDepth {
			return -1
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return -1
			}
			if i = str(b, i); i < 0 {
				return -1
			}
			if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
				return -1
			}
			if i = value(b, skipWS(b, i+1), depth); i < 0 {
				return -1
			}
			if i = skipWS(b, i); i >= len(b) {
				return -1
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
			case '}':
				return i + 1
			default:
				return -1
			}
		}
	case '[':
		if depth++; depth > maxDepth {
			return -1
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = value(b, i, depth); i < 0 {
				return -1
			}
			if i = skipWS(b, i); i >= len(b) {
				return -1
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
			case ']':
				return i + 1
			default:
				return -1
			}
		}
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	default:
		return number(b, i)
	}
}

func literal(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// number returns the index just past the number at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, or -1. What follows it is the
// caller's to check.
func number(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// Bytes of the word w that need a look in a string: '"', '\\' or a control character.
// The tests are exact for "is there any such byte": a word without one is skipped
// whole, a word with one is read byte by byte.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

func special(w uint64) bool {
	quote := w ^ (ones * '"')
	backslash := w ^ (ones * '\\')
	return ((w-ones*0x20)&^w|(quote-ones)&^quote|(backslash-ones)&^backslash)&highs != 0
}

// str returns the index just past the valid JSON string that starts at b[i] == '"', or
// -1.
func str(b []byte, i int) int {
	i++
	for {
		for i+8 <= len(b) && !special(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 || !hex4(b[i+2:i+6]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		default:
			i++
		}
	}
}

func hex4(h []byte) bool {
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
