package provider

import (
	"encoding/json"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

// CountsTokens reports whether an adapter's upstream counts a Messages request's
// tokens itself (Anthropic's POST /v1/messages/count_tokens).
func CountsTokens(ad Adapter) bool {
	_, ok := ad.(anthropic)
	return ok
}

// WriteCountTokensRequest fills req for Anthropic's token counting endpoint, for an
// account whose adapter CountsTokens: the client's body with the model rewritten.
func WriteCountTokensRequest(req *fasthttp.Request, a *Account, model string, body []byte, f *jsonscan.Fields) {
	req.SetRequestURI(strings.TrimSuffix(a.URLs[OpChat], "/") + "/count_tokens")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SwapBody(jsonscan.Rewrite(req.SwapBody(nil)[:0], body, f, model, true))
	req.Header.Set("anthropic-version", AnthropicVersion)
	setHeaders(req, a)
}

// EstimateTokens estimates the input tokens of a request body when no upstream can
// count them: a quarter of the bytes of its string values (text, tool schemas,
// names; keys and JSON syntax are not counted), rounded up, plus 4 per message for
// the framing every chat format adds. It is the common rule of thumb for English
// text with OpenAI's and Anthropic's tokenizers, and errs high on code; a body that
// is not JSON counts a quarter of its bytes.
func EstimateTokens(body []byte) int64 {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return int64(len(body)+3) / 4
	}
	var chars, messages int64
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch x := v.(type) {
		case string:
			if key != "model" {
				chars += int64(len(x))
			}
		case []any:
			if key == "messages" || key == "input" {
				messages += int64(len(x))
			}
			for _, e := range x {
				walk(e, "")
			}
		case map[string]any:
			for k, e := range x {
				walk(e, k)
			}
		}
	}
	walk(v, "")
	return (chars+3)/4 + 4*messages
}
