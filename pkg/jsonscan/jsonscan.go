// Package jsonscan reads the few top-level fields of a JSON request body that a gateway
// routes on (model, stream, backend, user, previous_response_id) without decoding the
// rest, and splices a new model value into the body, so the body is otherwise passed through byte for byte; and it
// reads the token usage an answer reports (usage.go).
package jsonscan

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Errors returned by Scan; all wrap ErrBadRequest.
var (
	ErrBadRequest = errors.New("bad request body")
	ErrMalformed  = fmt.Errorf("%w: not a valid JSON object", ErrBadRequest)
)

// Span is a half-open byte range [Start, End) of a value in the body; the zero Span
// means the field was absent.
type Span struct{ Start, End int }

// Present reports whether the field was in the body.
func (s Span) Present() bool { return s.End > s.Start }

// Fields are the routing fields of a request body.
type Fields struct {
	// Model is the raw "model" value including its quotes.
	Model Span
	// Backend is the raw "backend" value (forces a provider) including its quotes.
	Backend Span
	// BackendMember spans the whole `"backend": "x"` member, for removal.
	BackendMember Span
	Stream        bool
	// User is the raw "user" value when it is a string (session affinity may
	// route on it).
	User Span
	// PreviousResponse is the raw "previous_response_id" value when it is a string:
	// the Responses API's continuation, which routes to the backend that made it.
	PreviousResponse Span
	// StreamOptions is the raw "stream_options" value; IncludeUsage says whether it
	// asks for the usage chunk ("include_usage": true).
	StreamOptions Span
	IncludeUsage  bool
	// AskUsage, set by the caller, makes Rewrite ask for the usage chunk
	// (stream_options.include_usage) when the body does not.
	AskUsage bool
	// MaxTokens is the answer's token limit the request sets (max_tokens,
	// max_completion_tokens or max_output_tokens, the largest), or -1: what a
	// request's token reservation counts on.
	MaxTokens int64

	streamSeen, userSeen, previousSeen bool
}

// Scan validates body as a JSON object and locates its routing fields. It does not
// allocate for well-formed bodies whose keys carry no escapes.
//
// A routing key given twice, in any spelling ("model" and "mod\u0065l"), or in
// another case ("Model", which Go's encoding/json takes for "model" and others do
// not) is refused: the gateway and an upstream must never read different values.
func Scan(body []byte, f *Fields) error {
	*f = Fields{MaxTokens: -1}
	// One pass: every member is validated as it is read (value), and what follows
	// the object may only be whitespace, so a body Scan accepts is one that
	// encoding/json.Valid accepts.
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return ErrMalformed
	}
	prevEnd := i // the '{' or the ',' before the current member, for member removal
	if i = skipWS(body, i+1); i < len(body) && body[i] == '}' {
		return end(body, i)
	}
	for {
		if i >= len(body) || body[i] != '"' {
			return ErrMalformed
		}
		keyStart := i
		keyEnd := str(body, i)
		if keyEnd < 0 {
			return ErrMalformed
		}
		key := body[keyStart+1 : keyEnd-1]
		if i = skipWS(body, keyEnd); i >= len(body) || body[i] != ':' {
			return ErrMalformed
		}
		valStart := skipWS(body, i+1)
		valEnd := value(body, valStart, 1)
		if valEnd < 0 {
			return ErrMalformed
		}
		if len(key) >= len("max_tokens") && key[0] == 'm' {
			switch string(key) {
			case "max_tokens", "max_completion_tokens", "max_output_tokens":
				if n, ok := count(body[valStart:valEnd]); ok {
					f.MaxTokens = max(f.MaxTokens, n)
				}
			}
		}
		name, variant := routingKey(key)
		if variant {
			return fmt.Errorf("%w: key %q differs from %q only in case; send %q", ErrBadRequest, key, name, name)
		}
		if name != "" && (name == "model" && f.Model.Present() || name == "backend" && f.Backend.Present() ||
			name == "stream" && f.streamSeen || name == "user" && f.userSeen || name == "previous_response_id" && f.previousSeen) {
			return fmt.Errorf("%w: %q is given more than once", ErrBadRequest, name)
		}
		switch name {
		case "model":
			if body[valStart] != '"' {
				return fmt.Errorf("%w: \"model\" must be a string", ErrBadRequest)
			}
			f.Model = Span{valStart, valEnd}
		case "stream":
			f.streamSeen = true
			switch string(body[valStart:valEnd]) {
			case "true":
				f.Stream = true
			case "false", "null":
				f.Stream = false
			default:
				return fmt.Errorf("%w: \"stream\" must be a boolean", ErrBadRequest)
			}
		case "stream_options":
			if f.StreamOptions.Present() {
				return fmt.Errorf("%w: %q is given more than once", ErrBadRequest, name)
			}
			f.StreamOptions = Span{valStart, valEnd}
			f.IncludeUsage = includeUsage(body[valStart:valEnd])
		case "user":
			f.userSeen = true
			if body[valStart] == '"' {
				f.User = Span{valStart, valEnd}
			}
		case "previous_response_id":
			f.previousSeen = true
			switch {
			case body[valStart] == '"':
				f.PreviousResponse = Span{valStart, valEnd}
			case string(body[valStart:valEnd]) != "null":
				return fmt.Errorf("%w: \"previous_response_id\" must be a string", ErrBadRequest)
			}
		case "backend":
			if body[valStart] != '"' {
				return fmt.Errorf("%w: \"backend\" must be a string", ErrBadRequest)
			}
			f.Backend = Span{valStart, valEnd}
			f.BackendMember = Span{prevEnd, valEnd}
			if prevEnd < len(body) && body[prevEnd] == '{' {
				// First member: remove it with its trailing comma instead of a leading one.
				f.BackendMember = Span{keyStart, valEnd}
				if j := skipWS(body, valEnd); j < len(body) && body[j] == ',' {
					f.BackendMember.End = skipWS(body, j+1)
				}
			}
		}
		if i = skipWS(body, valEnd); i >= len(body) {
			return ErrMalformed
		}
		switch body[i] {
		case ',':
			prevEnd = i
			i = skipWS(body, i+1)
		case '}':
			return end(body, i)
		default:
			return ErrMalformed
		}
	}
}

// end checks that only whitespace follows the object's closing brace at body[i].
func end(body []byte, i int) error {
	if skipWS(body, i+1) != len(body) {
		return ErrMalformed
	}
	return nil
}

// String returns the decoded string value at s (which must span a JSON string).
func String(body []byte, s Span) string {
	raw := body[s.Start+1 : s.End-1]
	if !hasEscape(raw) {
		return string(raw)
	}
	var v string
	_ = json.Unmarshal(body[s.Start:s.End], &v) // already validated
	return v
}

// Unescaped returns the raw bytes of the string at s when it has no escapes, so a
// lookup can use them without allocating; ok is false when it has escapes.
func Unescaped(body []byte, s Span) (raw []byte, ok bool) {
	raw = body[s.Start+1 : s.End-1]
	return raw, !hasEscape(raw)
}

// Rewrite appends body to dst with the model value replaced by newModel (a plain
// string, JSON-quoted here), the "backend" member removed when drop is set, and, when
// f.AskUsage is set and the body does not ask for it, stream_options.include_usage
// set (a stream_options object that says false, or holds other options, is replaced:
// include_usage is the only option chat streams have had besides obfuscation).
func Rewrite(dst, body []byte, f *Fields, newModel string, dropBackend bool) []byte {
	type cut struct {
		span  Span
		repl  string // "" with model: the model; otherwise the replacement text
		model bool
	}
	var cuts [3]cut
	n := 0
	if f.Model.Present() {
		cuts[n] = cut{span: f.Model, model: true}
		n++
	}
	if dropBackend && f.BackendMember.Present() {
		cuts[n] = cut{span: f.BackendMember}
		n++
	}
	if f.AskUsage && !f.IncludeUsage {
		if f.StreamOptions.Present() {
			cuts[n] = cut{span: f.StreamOptions, repl: `{"include_usage":true}`}
		} else {
			end := len(body) - 1
			for end > 0 && body[end] != '}' {
				end--
			}
			cuts[n] = cut{span: Span{end, end}, repl: `,"stream_options":{"include_usage":true}`}
		}
		n++
	}
	for i := 1; i < n; i++ {
		for j := i; j > 0 && cuts[j].span.Start < cuts[j-1].span.Start; j-- {
			cuts[j], cuts[j-1] = cuts[j-1], cuts[j]
		}
	}
	pos := 0
	for _, c := range cuts[:n] {
		dst = append(dst, body[pos:c.span.Start]...)
		if c.model {
			dst = AppendString(dst, newModel)
		} else {
			dst = append(dst, c.repl...)
		}
		pos = c.span.End
	}
	return append(dst, body[pos:]...)
}

// includeUsage reports whether a stream_options value sets include_usage to true.
func includeUsage(v []byte) bool {
	if len(v) == 0 || v[0] != '{' {
		return false
	}
	for i := 1; ; {
		k, val, next := member(v, i)
		if next < 0 {
			return false
		}
		if string(k) == "include_usage" {
			return string(val) == "true"
		}
		i = next
	}
}

// routingKey returns the routing field a top-level key names ("model", "stream",
// "backend"; "" for any other key), and whether it is spelled in another case.
func routingKey(key []byte) (name string, variant bool) {
	// Comparisons of string(key) against constants do not allocate; only escaped keys
	// need decoding.
	if !hasEscape(key) {
		switch len(key) {
		case len("model"), len("stream"), len("backend"), len("user"), len("previous_response_id"), len("stream_options"):
		default:
			return "", false
		}
		switch string(key) {
		case "model":
			return "model", false
		case "stream":
			return "stream", false
		case "backend":
			return "backend", false
		case "user":
			return "user", false
		case "previous_response_id":
			return "previous_response_id", false
		case "stream_options":
			return "stream_options", false
		}
	} else {
		key = unescape(key)
	}
	for _, n := range [...]string{"model", "stream", "backend", "user", "previous_response_id", "stream_options"} {
		if equalFoldASCII(key, n) {
			return n, string(key) != n
		}
	}
	return "", false
}

// unescape decodes a key with escapes (already validated JSON).
func unescape(key []byte) []byte {
	var s string
	q := make([]byte, 0, len(key)+2)
	q = append(append(append(q, '"'), key...), '"')
	_ = json.Unmarshal(q, &s)
	return []byte(s)
}

// equalFoldASCII is bytes.EqualFold for an ASCII name, without converting it.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if b[i]|0x20 != s[i]|0x20 {
			return false
		}
	}
	return true
}

func hasEscape(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// AppendString appends s as a JSON string exactly as encoding/json writes it with
// HTML escaping off (control characters, U+2028, U+2029 escaped; invalid UTF-8 as
// U+FFFD), so hand-written and encoded output agree byte for byte. It is the one JSON string
// writer of the gateway: strconv.Quote is not JSON (its \x and \U escapes are invalid
// there), and client input such as a model name can contain anything.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
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
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// RenameKey appends body to dst with its top-level key old renamed to new, when old
// is present (spelled plainly) and new is not; renamed says whether it did. body must
// be a valid JSON object (Scan validated it).
func RenameKey(dst, body []byte, old, new string) (_ []byte, renamed bool) {
	at := -1 // start of old's key string
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return append(dst, body...), false
	}
	i++
	for {
		i = skipWS(body, i)
		if i >= len(body) || body[i] == '}' {
			break
		}
		if body[i] == ',' {
			i = skipWS(body, i+1)
		}
		keyStart := i
		keyEnd := str(body, i)
		if keyEnd < 0 {
			return append(dst, body...), false
		}
		switch string(body[keyStart+1 : keyEnd-1]) {
		case old:
			at = keyStart
		case new:
			return append(dst, body...), false
		}
		i = skipWS(body, keyEnd)
		i = skipWS(body, i+1) // ':'
		if i = value(body, i, 1); i < 0 {
			return append(dst, body...), false
		}
	}
	if at < 0 {
		return append(dst, body...), false
	}
	dst = append(dst, body[:at]...)
	dst = AppendString(dst, new)
	return append(dst, body[at+len(old)+2:]...), true
}
