package provider

import (
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

func init() {
	Register(DefaultKind, openAI{})
	// Gemini is served through Google's OpenAI-compatible endpoint
	// (https://generativelanguage.googleapis.com/v1beta/openai), so it is the same
	// adapter; that endpoint has no Responses API, which the gateway then translates.
	Register("gemini", openAI{chatOnly: true})
}

// openAI is any OpenAI-compatible service: the body passes through with only the model
// rewritten, and answers are already in OpenAI's format.
type openAI struct {
	chatOnly bool // no native Responses API
}

func (openAI) Prepare(a *Account) error {
	for op := range numOps {
		u, err := OpenAIEndpoint(a.BaseURL, op.String())
		if err != nil {
			return err
		}
		a.URLs[op] = u
	}
	if a.APIKey != "" {
		a.Auth = [2]string{"Authorization", "Bearer " + a.APIKey}
	}
	return nil
}

func (o openAI) Supports(op Op) bool { return op != OpResponses || !o.chatOnly }

func (openAI) WriteRequest(req *fasthttp.Request, a *Account, op Op, model string, body []byte, f *jsonscan.Fields) error {
	req.SetRequestURI(a.URLs[op])
	if op == OpModels {
		req.Header.SetMethod(fasthttp.MethodGet)
	} else {
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		setOpenAIBody(req, op, model, body, f)
	}
	setHeaders(req, a)
	return nil
}

// setOpenAIBody sets the body of an OpenAI-format request: the client's, with the
// model rewritten into the request's own pooled buffer (its capacity is reused). A
// chat request to a reasoning model has max_tokens renamed to max_completion_tokens,
// the only spelling those models accept.
func setOpenAIBody(req *fasthttp.Request, op Op, model string, body []byte, f *jsonscan.Fields) {
	b := jsonscan.Rewrite(req.SwapBody(nil)[:0], body, f, model, true)
	if op == OpChat && ReasoningModel(model) {
		if renamed, ok := jsonscan.RenameKey(nil, b, "max_tokens", "max_completion_tokens"); ok {
			b = renamed
		}
	}
	req.SwapBody(b)
}

// reasoningModels are the prefixes of OpenAI's reasoning model names, which refuse
// max_tokens.
var reasoningModels = []string{"o1", "o3", "o4", "gpt-5"}

// ReasoningModel reports whether an upstream model (an Azure deployment: by its name)
// is one of OpenAI's reasoning models.
func ReasoningModel(model string) bool {
	for _, p := range reasoningModels {
		if rest, ok := strings.CutPrefix(model, p); ok && (rest == "" || rest[0] == '-' || rest[0] == '.' || p == "gpt-5") {
			return true
		}
	}
	return false
}

func (openAI) TranslateResponse(_ Op, _ int, _, dst []byte) ([]byte, bool, error) {
	return dst, false, nil
}

func (openAI) NewStream(Op, string) StreamTranslator { return nil }

// setHeaders sends the account's auth header and then its configured extra headers,
// so an operator can override anything but cannot lose authentication by accident.
func setHeaders(req *fasthttp.Request, a *Account) {
	if a.Auth[0] != "" {
		req.Header.Set(a.Auth[0], a.Auth[1])
	}
	for _, h := range a.Headers {
		req.Header.Set(h[0], h[1])
	}
}

// OpenAIEndpoint joins an OpenAI-style base URL and an operation path. A base that
// already ends in the operation is used as is; a bare host gets /v1/ first; any other
// path (…/v1, …/openai/v1, …/api/paas/v4) gets the operation appended.
func OpenAIEndpoint(base, op string) (string, error) {
	u, err := parseBaseURL(base)
	if err != nil {
		return "", err
	}
	path := strings.TrimRight(u.Path, "/")
	for _, known := range []string{"/chat/completions", "/completions", "/embeddings", "/models", "/responses"} {
		if strings.HasSuffix(path, known) {
			// A full endpoint was configured: keep it for that op, swap it for others.
			path = strings.TrimSuffix(path, known)
			break
		}
	}
	if path == "" {
		path = "/v1"
	}
	u.Path = path + "/" + op
	return u.String(), nil
}
