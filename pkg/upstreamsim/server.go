// Package upstreamsim is a fake OpenAI-compatible provider for tests, the local demo and
// benchmarks. It also speaks the Azure OpenAI dialect (paths under /openai/, see
// azure.go) and the Anthropic Messages API (POST /v1/messages and
// /v1/messages/count_tokens, see anthropic.go and counttokens.go). It answers chat
// completions, legacy completions, embeddings, model listings and the Responses API
// (POST /v1/responses and the stored-response routes under /v1/responses/{id}, see
// responses.go) with small deterministic payloads, and can be told to be slow, to fail
// with a given status and error code, or to cut a stream short, either for the whole
// server (Options, SetOptions) or per request through X-Sim-* headers, so gateway tests
// can inject faults without extra plumbing.
//
// Stored responses live in the Server's memory, so two Servers behave as two provider
// accounts: each answers the other's previous_response_id with 400
// previous_response_not_found, which lets a test prove a gateway's affinity.
//
// Every response carries an X-Sim-Name header with Options.Name, so a test behind a
// gateway can tell which upstream answered, and a request id of its own (X-Request-Id
// as OpenAI sends it; request-id as Anthropic does).
//
// Per-request overrides (decimal integers, except the code; a malformed value is
// answered with 400):
//
//	X-Sim-Fail-Status        replaces Options.FailStatus (0 disables it)
//	X-Sim-Fail-Code          replaces Options.FailCode (empty disables it)
//	X-Sim-Latency-Ms         replaces Options.Latency
//	X-Sim-Chunk-Delay-Ms     replaces Options.ChunkDelay
//	X-Sim-Chunks             replaces Options.Chunks
//	X-Sim-Fail-After-Chunks  replaces Options.FailAfterChunks
package upstreamsim

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Defaults applied to zero Options fields.
const (
	DefaultName   = "sim"
	DefaultChunks = 5
	// DefaultModel is what GET /v1/models lists when Options.Models is empty.
	DefaultModel = "sim-model"
)

// Options shapes the simulator's behaviour. The zero value is a fast, healthy provider
// that accepts any model and any (or no) API key.
type Options struct {
	// Name identifies the simulator: it appears in reply text, in owned_by of model
	// listings and in the X-Sim-Name response header. Defaults to DefaultName.
	Name string
	// APIKey, if set, must arrive as "Authorization: Bearer <APIKey>" or
	// "api-key: <APIKey>" (Azure style); anything else gets 401.
	APIKey string
	// Latency delays every response before its headers are written.
	Latency time.Duration
	// Chunks is the number of content deltas in a stream. Defaults to DefaultChunks.
	Chunks int
	// ChunkDelay is the pause between consecutive stream events.
	ChunkDelay time.Duration
	// FailStatus, if non-zero, makes every authenticated request on a known route answer
	// this status with an OpenAI-style error body (Azure's or Anthropic's on their
	// routes).
	FailStatus int
	// FailCode, used with FailStatus, is the error code of the injected failure, for
	// tests of fallbacks that depend on the class of an error. With FailStatus 400,
	// "context_length_exceeded" answers OpenAI's context-length error (param "messages",
	// or "input" on the Responses API) and, on /v1/messages, Anthropic's "prompt is too
	// long"; "content_filter" answers Azure's content-filter error (innererror
	// ResponsibleAIPolicyViolation) on every OpenAI-format route. Any other code (or
	// status) gets the route's usual error body with this code; on Anthropic routes it
	// replaces the error type.
	FailCode string
	// FailAfterChunks, if positive, makes streams send this many events (counting the
	// role chunk) and then close the connection mid-body, without [DONE] and without the
	// terminating HTTP chunk, as a crashing provider would.
	FailAfterChunks int
	// Models are the model ids served. When empty, any model is accepted and GET
	// /v1/models lists DefaultModel; otherwise other models get 404 model_not_found.
	Models []string
}

// Stats counts what the simulator has seen since it started or since ResetStats.
type Stats struct {
	// Requests counts every request, including rejected ones.
	Requests int64
	// ChatRequests counts POSTs to the chat completions route, including ones that then
	// failed, so failover tests can count attempts.
	ChatRequests int64
	// ResponsesRequests counts POSTs that create a response (POST /v1/responses and its
	// Azure forms), including ones that then failed.
	ResponsesRequests int64
	// Models counts requests by the model in their body, for bodies that parsed.
	Models map[string]int64
	// The Last fields describe the most recent POST. GETs are left out so that
	// background model listings (health checks) don't overwrite the request under test.
	LastAuthorization string
	LastHeader        http.Header
	LastBody          []byte
	// LastURI is the request URI (path and query) of the most recent POST.
	LastURI string
}

// Server is a running simulator. Its methods are safe for concurrent use.
type Server struct {
	opts atomic.Pointer[Options]
	srv  *fasthttp.Server
	ids  atomic.Uint64
	// tag makes the ids of stored responses and their items unique across Servers.
	tag       string
	responses responseStore
	// done aborts sleeps (latency, chunk delays) so Close doesn't wait for them.
	done      chan struct{}
	closeOnce sync.Once

	mu     sync.Mutex // guards ln, closed and fresh
	ln     net.Listener
	closed bool
	// fresh holds connections that have not started a request yet. fasthttp's Shutdown
	// counts them as idle only 5s after they open, and HTTP clients routinely leave such
	// spare connections around, so Close closes them itself.
	fresh map[net.Conn]struct{}

	statsMu sync.Mutex
	stats   Stats
}

// New returns a simulator configured by opts; call Start to serve.
func New(opts Options) *Server {
	s := &Server{done: make(chan struct{}), fresh: make(map[net.Conn]struct{}), tag: strings.ToLower(rand.Text()[:12])}
	s.SetOptions(opts)
	s.srv = &fasthttp.Server{
		Handler:         s.handle,
		ConnState:       s.connState,
		Name:            "berry-sim",
		CloseOnShutdown: true,
		// Benchmarks send large prompts; the fasthttp default of 4 MiB is too tight.
		MaxRequestBodySize: 64 << 20,
		// Client disconnects mid-stream are expected here, not worth logging.
		Logger: log.New(io.Discard, "", 0),
	}
	return s
}

// Start listens on addr (use "127.0.0.1:0" for a free port) and serves in the
// background. A Server can be started once.
func (s *Server) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("upstreamsim: server closed")
	}
	if s.ln != nil {
		return errors.New("upstreamsim: server already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	go s.srv.Serve(ln) //nolint:errcheck // returns only once Close shuts it down
	return nil
}

// Addr returns the listening host:port, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL returns the OpenAI base URL, "http://host:port/v1".
func (s *Server) URL() string { return "http://" + s.Addr() + "/v1" }

// Close stops the server. Streams and delays in progress are cut short; it waits at
// most a few seconds for connections to finish.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	started := s.ln != nil
	for c := range s.fresh {
		c.Close()
	}
	clear(s.fresh)
	s.mu.Unlock()
	s.closeOnce.Do(func() { close(s.done) })
	if !started {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.ShutdownWithContext(ctx)
}

func (s *Server) connState(c net.Conn, st fasthttp.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case st != fasthttp.StateNew:
		delete(s.fresh, c)
	case s.closed:
		c.Close() // accepted while Close was sweeping
	default:
		s.fresh[c] = struct{}{}
	}
}

// SetOptions replaces the options; requests already past their checks keep the options
// they started with.
func (s *Server) SetOptions(o Options) {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Chunks <= 0 {
		o.Chunks = DefaultChunks
	}
	o.Models = slices.Clone(o.Models)
	s.opts.Store(&o)
}

// Options returns the current options with defaults applied, so a test can change one
// field and hand them back to SetOptions.
func (s *Server) Options() Options {
	o := *s.opts.Load()
	o.Models = slices.Clone(o.Models)
	return o
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	st := s.stats
	st.Models = make(map[string]int64, len(s.stats.Models))
	for m, n := range s.stats.Models {
		st.Models[m] = n
	}
	st.LastHeader = s.stats.LastHeader.Clone()
	st.LastBody = slices.Clone(s.stats.LastBody)
	return st
}

// ResetStats zeroes the counters, for tests that reuse a server across cases.
func (s *Server) ResetStats() {
	s.statsMu.Lock()
	s.stats = Stats{}
	s.statsMu.Unlock()
}

// requestKind is what record counts a request as, besides Stats.Requests.
type requestKind int

const (
	kindOther requestKind = iota
	kindChat
	kindResponses
)

func (s *Server) record(ctx *fasthttp.RequestCtx, kind requestKind) {
	post := ctx.IsPost()
	var (
		auth   string
		header http.Header
		body   []byte
		uri    string
	)
	if post {
		// Copied outside the lock: the request buffers are reused after the handler.
		auth = string(ctx.Request.Header.Peek("Authorization"))
		header = make(http.Header)
		for k, v := range ctx.Request.Header.All() {
			header.Add(string(k), string(v))
		}
		body = slices.Clone(ctx.PostBody())
		uri = string(ctx.RequestURI())
	}
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.stats.Requests++
	switch kind {
	case kindChat:
		s.stats.ChatRequests++
	case kindResponses:
		s.stats.ResponsesRequests++
	}
	if post {
		s.stats.LastAuthorization, s.stats.LastHeader, s.stats.LastBody = auth, header, body
		s.stats.LastURI = uri
	}
}

func (s *Server) countModel(model string) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if s.stats.Models == nil {
		s.stats.Models = make(map[string]int64)
	}
	s.stats.Models[model]++
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch {
	case strings.HasPrefix(path, "/openai/"):
		s.handleAzure(ctx, path)
		return
	case path == "/v1/messages" || path == "/v1/messages/count_tokens" ||
		path == "/v1/models" && isAnthropic(&ctx.Request.Header):
		s.handleAnthropic(ctx, path)
		return
	}
	route := path
	if strings.HasPrefix(route, "/v1/") {
		route = route[len("/v1"):]
	}
	respSub, isResponses := responsesRoute(route)
	switch {
	case route == "/chat/completions" && ctx.IsPost():
		s.record(ctx, kindChat)
	case isResponses && respSub == "" && ctx.IsPost():
		s.record(ctx, kindResponses)
	default:
		s.record(ctx, kindOther)
	}

	o, err := requestOptions(*s.opts.Load(), &ctx.Request.Header)
	ctx.Response.Header.Set("X-Sim-Name", o.Name)
	ctx.Response.Header.Set("X-Request-Id", "req_"+s.newID()) // as OpenAI names its requests
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", "", err.Error())
		return
	}
	if !pause(o.Latency, s.done) {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "server_error", "", "simulator is shutting down")
		return
	}
	if !authorized(ctx, o.APIKey) {
		writeError(ctx, fasthttp.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
			"Incorrect API key provided.")
		return
	}

	if isResponses {
		s.responsesAPI(ctx, &o, respSub, false)
		return
	}
	var endpoint func(*fasthttp.RequestCtx, *Options)
	method := fasthttp.MethodPost
	switch route {
	case "/chat/completions":
		endpoint = s.chat
	case "/completions":
		endpoint = s.completion
	case "/embeddings":
		endpoint = s.embeddings
	case "/models":
		endpoint, method = s.models, fasthttp.MethodGet
	default:
		writeError(ctx, fasthttp.StatusNotFound, "invalid_request_error", "",
			"Invalid URL ("+string(ctx.Method())+" "+string(ctx.Path())+")")
		return
	}
	if string(ctx.Method()) != method {
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "invalid_request_error", "",
			"Method "+string(ctx.Method())+" not allowed on "+string(ctx.Path()))
		return
	}
	endpoint(ctx, &o)
}

// requestOptions applies the X-Sim-* overrides to o.
func requestOptions(o Options, h *fasthttp.RequestHeader) (Options, error) {
	for _, f := range []struct {
		header string
		set    func(int)
	}{
		{"X-Sim-Fail-Status", func(n int) { o.FailStatus = n }},
		{"X-Sim-Latency-Ms", func(n int) { o.Latency = time.Duration(n) * time.Millisecond }},
		{"X-Sim-Chunk-Delay-Ms", func(n int) { o.ChunkDelay = time.Duration(n) * time.Millisecond }},
		{"X-Sim-Chunks", func(n int) { o.Chunks = max(n, 1) }},
		{"X-Sim-Fail-After-Chunks", func(n int) { o.FailAfterChunks = n }},
	} {
		v := h.Peek(f.header)
		if v == nil {
			continue
		}
		n, err := fasthttp.ParseUint(v)
		if err != nil {
			return o, errors.New("invalid " + f.header + " header: want a non-negative integer")
		}
		f.set(n)
	}
	if v := h.Peek("X-Sim-Fail-Code"); v != nil {
		o.FailCode = string(v)
	}
	if o.FailStatus != 0 && (o.FailStatus < 100 || o.FailStatus > 599) {
		return o, errors.New("invalid X-Sim-Fail-Status header: want an HTTP status")
	}
	return o, nil
}

func authorized(ctx *fasthttp.RequestCtx, key string) bool {
	if key == "" {
		return true
	}
	h := &ctx.Request.Header
	return string(h.Peek("Authorization")) == "Bearer "+key || string(h.Peek("api-key")) == key
}

// pause sleeps for d unless done closes first; it reports whether it slept fully.
func pause(d time.Duration, done <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
