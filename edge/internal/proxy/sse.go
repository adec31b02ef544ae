package proxy

import "bytes"

// eventKind classifies an OpenAI-format SSE event for failover: before the first
// content-bearing event an upstream may still be abandoned for another backend.
type eventKind uint8

const (
	kindOther   eventKind = iota // role-only chunk, comment, keep-alive
	kindContent                  // carries output: text, tool calls or a finish reason
	kindError                    // an in-stream error
	kindDone                     // data: [DONE]
)

func classify(name, data []byte) eventKind {
	if string(name) == "error" {
		return kindError
	}
	d := bytes.TrimSpace(data)
	if len(d) == 0 {
		return kindOther
	}
	if string(d) == "[DONE]" {
		return kindDone
	}
	if isErrorObject(d) {
		return kindError
	}
	for _, k := range contentKeys {
		if hasValue(d, k) {
			return kindContent
		}
	}
	return kindOther
}

// contentKeys are the chunk fields whose non-empty value means the model produced
// output. Inside JSON strings a quote is always escaped, so a quoted key found in the
// raw bytes is a real key, never part of a text value.
var contentKeys = [][]byte{
	[]byte(`"content"`), []byte(`"text"`), []byte(`"tool_calls"`),
	[]byte(`"function_call"`), []byte(`"refusal"`), []byte(`"finish_reason"`),
}

// isErrorObject reports whether d is a JSON object whose first key is "error".
func isErrorObject(d []byte) bool {
	if d[0] != '{' {
		return false
	}
	d = bytes.TrimLeft(d[1:], " \t\r\n")
	return bytes.HasPrefix(d, []byte(`"error"`))
}

// hasValue reports whether some occurrence of key in d has a value other than null,
// "", [] or {}.
func hasValue(d, key []byte) bool {
	for {
		i := bytes.Index(d, key)
		if i < 0 {
			return false
		}
		d = d[i+len(key):]
		v := bytes.TrimLeft(d, " \t\r\n")
		if len(v) == 0 || v[0] != ':' {
			continue // the key text was a value, e.g. "role":"content"
		}
		v = bytes.TrimLeft(v[1:], " \t\r\n")
		if len(v) < 2 {
			return false
		}
		switch v[0] {
		case 'n': // null
		case '"':
			if v[1] != '"' {
				return true
			}
		case '[':
			if c := firstNonSpace(v[1:]); c != ']' && c != 0 {
				return true
			}
		case '{':
			if c := firstNonSpace(v[1:]); c != '}' && c != 0 {
				return true
			}
		default:
			return true
		}
	}
}

func firstNonSpace(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}
