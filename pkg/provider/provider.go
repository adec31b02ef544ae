// Package provider holds one adapter per provider kind (backend_type): how to call it,
// how to authenticate, and how to turn its answers into OpenAI's format. Each kind is
// one file that registers itself; the edge's proxy only talks to the Adapter interface.
package provider

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

// Op is an operation a client asks for, named by its OpenAI endpoint.
type Op uint8

// Operations.
const (
	OpChat        Op = iota // POST /v1/chat/completions
	OpCompletions           // POST /v1/completions
	OpEmbeddings            // POST /v1/embeddings
	OpModels                // GET /v1/models (health probes and model discovery)
	OpResponses             // POST /v1/responses (the Responses API, native)
	numOps
)

func (o Op) String() string {
	switch o {
	case OpChat:
		return "chat/completions"
	case OpCompletions:
		return "completions"
	case OpEmbeddings:
		return "embeddings"
	case OpModels:
		return "models"
	case OpResponses:
		return "responses"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Account is one configured provider as an adapter sees it. Prepare fills the derived
// fields once per snapshot so the request path only reads them.
type Account struct {
	ID         string
	Kind       string
	BaseURL    string
	APIKey     string
	APIVersion string
	// Headers are the provider's extra headers from config, sent on every request.
	Headers [][2]string

	// URLs holds the endpoint per Op, filled by Prepare ("" where unsupported or where
	// the URL depends on the model, as for Azure deployments).
	URLs [numOps]string
	// Auth is the authentication header (name, value), filled by Prepare.
	Auth [2]string

	// Azure deployment URLs are prefix + deployment + "/" + op + query.
	deploymentPrefix, deploymentQuery string
	azureV1                           bool
}

// Adapter is one provider kind. Implementations must be safe for concurrent use and
// should not allocate on the passthrough path.
type Adapter interface {
	// Prepare checks an account's settings and fills its derived fields. A setting it
	// refuses is a *ConfigError; config validation runs Prepare, so the control plane
	// refuses such a config at import and edges never see it.
	Prepare(a *Account) error
	// Supports reports whether the kind serves op.
	Supports(op Op) bool
	// WriteRequest fills req (method, URL, headers, body) for one attempt of op against
	// upstream model `model`. body is the client's OpenAI-format request and f its
	// routing fields; the adapter rewrites or translates it.
	WriteRequest(req *fasthttp.Request, a *Account, op Op, model string, body []byte, f *jsonscan.Fields) error
	// TranslateResponse converts a buffered upstream response body (success or error)
	// to OpenAI's format, appending to dst. translated is false when the body is
	// already in OpenAI's format and can be passed through as is.
	TranslateResponse(op Op, status int, body, dst []byte) (out []byte, translated bool, err error)
	// NewStream returns a translator for a streamed answer, or nil when the upstream
	// already speaks OpenAI's SSE format.
	NewStream(op Op, model string) StreamTranslator
}

// StreamTranslator turns one upstream SSE stream into OpenAI chat.completion.chunk
// events. It is used by one request at a time.
type StreamTranslator interface {
	// Event translates one upstream SSE event (its event name, possibly empty, and its
	// data payload), appending zero or more complete OpenAI SSE events ("data: …\n\n")
	// to dst. An error means the upstream reported a failure in-stream.
	Event(name, data, dst []byte) ([]byte, error)
	// End appends whatever closes the stream ("data: [DONE]\n\n") once the upstream's
	// body has ended. If the upstream never sent the event that ends its stream, End
	// appends nothing and returns ErrTruncated: the client must see the stream fail,
	// not end cleanly.
	End(dst []byte) ([]byte, error)
}

// StatusTranslator is implemented by adapters whose upstream uses HTTP statuses
// clients do not know (Anthropic's 529 overloaded). The proxy decides failover on the
// upstream status and shows the client ClientStatus of it.
type StatusTranslator interface {
	ClientStatus(op Op, upstream int) int
}

// ClientStatus is the status a client should see for an upstream status from a's
// provider.
func ClientStatus(a Adapter, op Op, upstream int) int {
	if st, ok := a.(StatusTranslator); ok {
		return st.ClientStatus(op, upstream)
	}
	return upstream
}

// NativeMessages is implemented by adapters whose upstream speaks the Anthropic
// Messages API itself. For the edge's POST /v1/messages the proxy uses it to pass the
// client's body through (model rewritten, the provider's key sent) and relays the
// answer untouched; for any other adapter it translates with MessagesToChatRequest,
// sends an ordinary OpChat request, and translates the answer back with
// ChatToMessagesResponse, OpenAIErrorToMessages or NewChatToMessagesStream.
type NativeMessages interface {
	WriteMessagesRequest(req *fasthttp.Request, a *Account, model string, body []byte, f *jsonscan.Fields) error
}

// DefaultKind is the backend_type of a provider that names none.
const DefaultKind = "openai"

// ConfigError is a provider setting an adapter's Prepare refuses. Field is the
// setting's key in the seed format (base_url, api_version), so config validation can
// name it as providers.<id>.<field> when the control plane imports a config, long
// before an edge would have to refuse the snapshot.
type ConfigError struct {
	Field, Msg string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Msg }

// DefaultAPIVersion is the api_version a provider of this kind gets when its config
// names none; "" for kinds without API versions. Config import fills it in, so stored
// configs say which version they use.
func DefaultAPIVersion(kind string) string {
	a, err := Lookup(kind)
	if err != nil {
		return ""
	}
	if v, ok := a.(Versioned); ok {
		return v.DefaultAPIVersion()
	}
	return ""
}

// Versioned is implemented by adapters whose upstream API is versioned per request
// (Azure's api-version).
type Versioned interface {
	DefaultAPIVersion() string
}

// parseBaseURL checks the base_url every adapter needs.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &ConfigError{Field: "base_url", Msg: "must be an absolute http(s) URL"}
	}
	return u, nil
}

var (
	mu       sync.RWMutex
	adapters = map[string]Adapter{}
)

// Register makes an adapter available for a backend_type. It panics on a duplicate, a
// programming error caught at init.
func Register(kind string, a Adapter) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := adapters[kind]; dup {
		panic("provider: kind registered twice: " + kind)
	}
	adapters[kind] = a
}

// genAINames are the names OpenTelemetry's GenAI conventions give the kinds
// (gen_ai.provider.name) where they differ from the kind.
var genAINames = map[string]string{
	"azure":  "azure.ai.openai",
	"claude": "anthropic",
	"gemini": "gcp.gemini",
}

// GenAIName returns a backend_type's gen_ai.provider.name.
func GenAIName(kind string) string {
	if kind == "" {
		kind = DefaultKind
	}
	if n, ok := genAINames[kind]; ok {
		return n
	}
	return kind
}

// Lookup returns the adapter for a backend_type; "" means DefaultKind.
func Lookup(kind string) (Adapter, error) {
	if kind == "" {
		kind = DefaultKind
	}
	mu.RLock()
	a, ok := adapters[kind]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown backend type %q (known: %s)", kind, strings.Join(Kinds(), ", "))
	}
	return a, nil
}

// Kinds lists the registered backend types, sorted.
func Kinds() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(adapters))
	for k := range adapters {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// WriteResponseCall fills req for a call on one stored response of a native Responses
// API account (OpenAI's, Azure's v1): method and the URL of response id, followed by
// suffix ("", "/cancel", "/input_items") and query (the client's, for listing
// options), with the account's authentication. id is escaped as one path segment.
func WriteResponseCall(req *fasthttp.Request, a *Account, method, id, suffix string, query []byte) {
	b := append(make([]byte, 0, len(a.URLs[OpResponses])+len(id)+len(suffix)+len(query)+2), a.URLs[OpResponses]...)
	b = append(b, '/')
	b = appendPathSegment(b, id)
	b = append(b, suffix...)
	if len(query) > 0 {
		b = append(append(b, '?'), query...)
	}
	req.SetRequestURIBytes(b)
	req.URI().DisablePathNormalizing = true
	req.Header.SetMethod(method)
	if method == fasthttp.MethodPost {
		req.Header.SetContentType("application/json")
	}
	setHeaders(req, a)
}
