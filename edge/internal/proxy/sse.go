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
	if hasContent(d) {
		return kindContent
	}
	return kindOther
}

// isErrorObject reports whether d is a JSON object whose first key is "error".
func isErrorObject(d []byte) bool {
	if d[0] != '{' {
		return false
	}
	d = bytes.TrimLeft(d[1:], " \t\r\n")
	return bytes.HasPrefix(d, []byte(`"error"`))
}

// contentKey reports whether a chunk field's non-empty value means the model
// produced output.
func contentKey(key []byte) bool {
	switch string(key) {
	case "content", "text", "tool_calls", "function_call", "refusal", "finish_reason":
		return true
	}
	return false
}

// hasContent reports whether some member of d, at any depth, has a content key
// (contentKey) and a value other than null, "", [] or {}. It is one pass over d's
// strings: a string followed by ':' is a key.
func hasContent(d []byte) bool {
	for i := 0; ; {
		q := bytes.IndexByte(d[i:], '"')
		if q < 0 {
			return false
		}
		start := i + q + 1
		end := closingQuote(d, start)
		if end < 0 {
			return false
		}
		i = end + 1
		v := trimWS(d[i:])
		if len(v) == 0 || v[0] != ':' || !contentKey(d[start:end]) {
			continue
		}
		if nonEmpty(trimWS(v[1:])) {
			return true
		}
	}
}

// closingQuote returns the index of the quote that ends the string whose content
// starts at d[i], or -1.
func closingQuote(d []byte, i int) int {
	for {
		q := bytes.IndexByte(d[i:], '"')
		if q < 0 {
			return -1
		}
		q += i
		escapes := 0
		for j := q - 1; j >= i && d[j] == '\\'; j-- {
			escapes++
		}
		if escapes%2 == 0 {
			return q
		}
		i = q + 1
	}
}

// nonEmpty reports whether the JSON value v starts with is other than null, "", []
// or {}.
func nonEmpty(v []byte) bool {
	if len(v) < 2 {
		return false
	}
	switch v[0] {
	case 'n': // null
		return false
	case '"':
		return v[1] != '"'
	case '[':
		c := firstNonSpace(v[1:])
		return c != ']' && c != 0
	case '{':
		c := firstNonSpace(v[1:])
		return c != '}' && c != 0
	}
	return true
}

func trimWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return b
}

func firstNonSpace(b []byte) byte {
	b = trimWS(b)
	if len(b) == 0 {
		return 0
	}
	return b[0]
}
