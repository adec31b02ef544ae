package jsonscan

// Usage is the token usage an answer reports; Input and Output are -1 when it did
// not say.
type Usage struct {
	// Input counts every prompt token, cached ones included: OpenAI's prompt_tokens,
	// or Anthropic's input_tokens plus its cache_read_ and cache_creation_input_tokens.
	Input  int64
	Output int64 // completion_tokens, or output_tokens (reasoning tokens included)
	// Cached are the input tokens read from the provider's prompt cache (OpenAI's
	// prompt_tokens_details.cached_tokens, the Responses API's
	// input_tokens_details.cached_tokens, Anthropic's cache_read_input_tokens);
	// Reasoning the output tokens spent reasoning (completion_tokens_details or
	// output_tokens_details .reasoning_tokens). 0 when not reported.
	Cached, Reasoning int64
}

// NoUsage is a Usage that knows nothing yet.
var NoUsage = Usage{Input: -1, Output: -1}

// Known reports whether the answer said how many tokens it took.
func (u Usage) Known() bool { return u.Input >= 0 || u.Output >= 0 }

// Merge takes the counts o knows: a stream reports its usage in parts (Anthropic's
// input tokens at its start, the output at its end) and a later count replaces an
// earlier one.
func (u *Usage) Merge(o Usage) {
	if o.Input >= 0 {
		u.Input = o.Input
		u.Cached = o.Cached
	}
	if o.Output >= 0 {
		u.Output = o.Output
		u.Reasoning = o.Reasoning
	}
}

// ScanUsage reads the usage object of an answer or stream event in OpenAI's or
// Anthropic's shape: a top-level "usage", or one inside a top-level "message"
// (Anthropic's message_start) or "response" (the Responses API's events). ok is false
// when there is none or the body is not well-formed enough to tell. Unlike Scan, it
// does not require a validated body: answers come from upstreams, and this walks only
// the objects named, checking every bound.
func ScanUsage(body []byte) (u Usage, ok bool) {
	if u, ok := tailUsage(body); ok {
		return u, true
	}
	obj := answerValue(body, "usage", true)
	if len(obj) == 0 || obj[0] != '{' {
		return NoUsage, false
	}
	return usageObject(obj)
}

// ScanModel returns the raw "model" string (without quotes, escapes left as sent)
// of an answer or stream event, found where ScanUsage finds the usage; nil if none.
func ScanModel(body []byte) []byte {
	v := answerValue(body, "model", true)
	if len(v) < 2 || v[0] != '"' {
		return nil
	}
	return v[1 : len(v)-1]
}

// answerValue returns the raw value of key in the object body, or, nested, in its
// "message" or "response" object; nil if there is none.
func answerValue(body []byte, key string, nested bool) []byte {
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil
	}
	i++
	for {
		k, val, next := member(body, i)
		if next < 0 {
			return nil
		}
		if string(k) == key {
			return val
		}
		if nested && len(val) > 0 && val[0] == '{' && (string(k) == "message" || string(k) == "response") {
			if v := answerValue(val, key, false); v != nil {
				return v
			}
		}
		i = next
	}
}

// tailUsage finds the last "usage" key of body that is followed by an object and
// reads it. OpenAI's, Anthropic's and the Responses API's answers put their usage
// last, so an answer need not be walked from its start. Inside JSON strings every
// quote is escaped, so the quoted key in the raw bytes is a real key; a nested one (a
// tool schema's property) is ruled out by the counts it must hold.
func tailUsage(body []byte) (Usage, bool) {
	rest := body
	for {
		i := lastIndex(rest, `"usage"`)
		if i < 0 {
			return NoUsage, false
		}
		j := skipWS(body, i+len(`"usage"`))
		if j < len(body) && body[j] == ':' {
			j = skipWS(body, j+1)
			if j < len(body) && body[j] == '{' {
				if e := checkedValue(body, j); e > 0 && topLevelAfter(body, e) {
					return usageObject(body[j:e])
				}
				return NoUsage, false // nested, or cut: the walk decides
			}
		}
		rest = body[:i]
	}
}

// topLevelAfter reports whether what follows offset i of body closes only the
// top-level object: i is then in a top-level member. It reads backwards from the end,
// skipping strings, which is short when i is near the end.
func topLevelAfter(body []byte, i int) bool {
	closers := 0
	for k := len(body) - 1; k >= i; k-- {
		switch body[k] {
		case '}', ']':
			closers++
		case '{', '[':
			closers--
		case '"':
			// Back to the quote that opens this string: one not escaped, i.e. not
			// preceded by an odd run of backslashes.
			for k--; k >= i; k-- {
				if body[k] != '"' {
					continue
				}
				n := 0
				for b := k - 1; b >= i && body[b] == '\\'; b-- {
					n++
				}
				if n%2 == 0 {
					break
				}
			}
		}
	}
	return closers == 1
}

func lastIndex(b []byte, s string) int {
	for i := len(b) - len(s); i >= 0; i-- {
		if b[i] == s[0] && string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}

// usageObject reads the counts of a usage object.
func usageObject(obj []byte) (u Usage, ok bool) {
	in, cacheRead, cacheWrite := int64(-1), int64(0), int64(0)
	u = NoUsage
	for i := 1; ; {
		key, val, next := member(obj, i)
		if next < 0 {
			if !ok {
				return NoUsage, false
			}
			if in >= 0 {
				u.Input = in + cacheRead + cacheWrite
				if cacheRead > 0 {
					u.Cached = cacheRead
				}
			} else {
				u.Cached = 0
			}
			if u.Output < 0 {
				u.Reasoning = 0
			}
			return u, true
		}
		i = next
		var dst *int64
		switch string(key) {
		case "prompt_tokens", "input_tokens":
			dst = &in
		case "completion_tokens", "output_tokens":
			dst = &u.Output
		case "cache_read_input_tokens":
			if n, valid := count(val); valid {
				cacheRead = n
			}
			continue
		case "cache_creation_input_tokens":
			if n, valid := count(val); valid {
				cacheWrite = n
			}
			continue
		case "prompt_tokens_details", "input_tokens_details":
			if n, valid := detail(val, "cached_tokens"); valid {
				u.Cached = n
			}
			continue
		case "completion_tokens_details", "output_tokens_details":
			if n, valid := detail(val, "reasoning_tokens"); valid {
				u.Reasoning = n
			}
			continue
		default:
			continue
		}
		if n, valid := count(val); valid {
			*dst, ok = n, true
		}
	}
}

// detail reads one count of a details object.
func detail(obj []byte, key string) (int64, bool) {
	if len(obj) == 0 || obj[0] != '{' {
		return 0, false
	}
	for i := 1; ; {
		k, val, next := member(obj, i)
		if next < 0 {
			return 0, false
		}
		if string(k) == key {
			return count(val)
		}
		i = next
	}
}

// count reads a non-negative integer.
func count(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// member reads the object member at b[i:] (just after '{' or after a member): its key
// without quotes, its raw value, and where the next member starts; next is -1 at the
// object's end or on malformed input.
func member(b []byte, i int) (key, val []byte, next int) {
	i = skipWS(b, i)
	if i < len(b) && b[i] == ',' {
		i = skipWS(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		return nil, nil, -1
	}
	ke := checkedString(b, i)
	if ke < 0 {
		return nil, nil, -1
	}
	key = b[i+1 : ke-1]
	i = skipWS(b, ke)
	if i >= len(b) || b[i] != ':' {
		return nil, nil, -1
	}
	i = skipWS(b, i+1)
	ve := checkedValue(b, i)
	if ve < 0 {
		return nil, nil, -1
	}
	return key, b[i:ve], ve
}

// checkedString skips the string at b[i] in input that may be malformed, without
// validating its bytes (unlike str): -1 when the string does not end.
func checkedString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// checkedValue skips the value at b[i] in input that may be malformed, without
// validating what it holds (unlike value): -1 when the value does not end.
func checkedValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return checkedString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				e := checkedString(b, i)
				if e < 0 {
					return -1
				}
				i = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	case '}', ']', ',', ':':
		return -1
	default:
		for j := i; j < len(b); j++ {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j
			}
		}
		return -1
	}
}
