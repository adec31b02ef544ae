package proxy

import "bytes"

// nextEvent finds the first complete SSE event in buf: it returns the event without
// its terminating blank line and the offset just past it, or ok=false when buf holds
// no complete event yet.
func nextEvent(buf []byte) (ev []byte, next int, ok bool) {
	for i := 0; i < len(buf); i++ {
		if buf[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(buf) && buf[i+1] == '\n':
			return buf[:i], i + 2, true
		case i+2 < len(buf) && buf[i+1] == '\r' && buf[i+2] == '\n':
			return trimCR(buf[:i]), i + 3, true
		}
	}
	return nil, 0, false
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// eventFields returns an event's name and its data. Several data lines are joined
// with "\n" into scratch; a single one aliases ev.
func eventFields(ev, scratch []byte) (name, data, scratchOut []byte) {
	n := 0
	for len(ev) > 0 {
		line := ev
		if i := bytes.IndexByte(ev, '\n'); i >= 0 {
			line, ev = ev[:i], ev[i+1:]
		} else {
			ev = nil
		}
		line = trimCR(line)
		field, value, _ := bytes.Cut(line, []byte(":"))
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "event":
			name = value
		case "data":
			switch n {
			case 0:
				data = value
			case 1:
				scratch = append(append(append(scratch[:0], data...), '\n'), value...)
				data = scratch
			default:
				scratch = append(append(scratch, '\n'), value...)
				data = scratch
			}
			n++
		}
	}
	return name, data, scratch
}

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
