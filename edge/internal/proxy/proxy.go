// Package proxy is the edge's client-facing HTTP handler: it authenticates a request,
// routes it by model to the backends the model's strategy orders, and passes the body
// through, streaming or not, failing over to the next backend when one fails.
package proxy

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/berry-gateway/berry/edge/internal/accesslog"
	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/meter"
	"github.com/berry-gateway/berry/edge/internal/quota"
	"github.com/berry-gateway/berry/edge/internal/routing"
	"github.com/berry-gateway/berry/pkg/balancer"
	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/provider"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"
)

// Runtime gives the routing table to serve from (serving.Runtime): bound to its
// runtime state, immutable, nil until the first snapshot; and the keys' fleet credit
// and the usage meter, which outlive tables.
type Runtime interface {
	Table() *routing.Table
	Quota() *quota.Ledger
	Meter() *meter.Meter
}

// Freshness says whether the served snapshot may no longer be trusted (cpsync.Client
// with --max-snapshot-age: the control plane has been away too long).
type Freshness interface {
	Stale() bool
}

// Pages answers the edge's operational endpoints (status.Pages).
type Pages interface {
	Health(ctx *fasthttp.RequestCtx)
	Ready(ctx *fasthttp.RequestCtx)
	Metrics(ctx *fasthttp.RequestCtx)
}

// DefaultConnectTimeout bounds dialing an upstream when Options leave it zero.
const DefaultConnectTimeout = 10 * time.Second

// Options configure a Handler; the zero value gives the defaults.
type Options struct {
	Log *slog.Logger
	// ConnectTimeout bounds dialing an upstream.
	ConnectTimeout time.Duration
	// StreamIdleTimeout bounds each gap between chunks once a stream's content flows;
	// 0 means the request timeout (the time-to-first-byte bound) applies to gaps too.
	StreamIdleTimeout time.Duration
	// ClientWriteTimeout bounds each write of a stream to the client (default
	// DefaultClientWriteTimeout): a client that stops reading loses its stream.
	ClientWriteTimeout time.Duration
	// MaxResponseBody bounds a buffered upstream answer (default
	// DefaultMaxResponseBody); a larger one is refused rather than held in memory.
	MaxResponseBody int
	// Freshness, when set, refuses requests while the snapshot is stale.
	Freshness Freshness
	// AccessLog, when set, gets one line per request.
	AccessLog *accesslog.Logger
	// Tracer, when set, gets a span per request and per upstream attempt (trace.go).
	Tracer trace.Tracer
}

// DefaultMaxResponseBody is the largest buffered upstream answer taken by default:
// room for a large embeddings batch.
const DefaultMaxResponseBody = 128 << 20

// DefaultClientWriteTimeout is how long one write to a client may block, as nginx's
// send_timeout.
const DefaultClientWriteTimeout = 60 * time.Second

// Handler serves the edge's client API. Create it with New.
type Handler struct {
	rt    Runtime
	pages Pages
	opts  Options
	log   *slog.Logger
	up    upstreams
	ids   requestIDs
	open  inFlight
}

// New returns a Handler that routes with rt's tables and hands the operational
// endpoints to pages.
func New(rt Runtime, pages Pages, o Options) *Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.ClientWriteTimeout <= 0 {
		o.ClientWriteTimeout = DefaultClientWriteTimeout
	}
	if o.MaxResponseBody <= 0 {
		o.MaxResponseBody = DefaultMaxResponseBody
	}
	h := &Handler{rt: rt, pages: pages, opts: o, log: o.Log, up: newUpstreams(o.ConnectTimeout, o.MaxResponseBody)}
	h.ids.init()
	return h
}

// ServeHTTP is the fasthttp request handler.
func (h *Handler) ServeHTTP(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	in := inboundOf(path)
	r := requestPool.Get().(*request)
	r.begin(ctx, in, &h.ids)
	logged := true
	// fasthttp does not recover handler panics: one bad request (or adapter) must not
	// take the edge down with every other request in flight.
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("request handler panicked", "path", string(path), "request_id", string(r.id), "panic", fmt.Sprint(p))
			in.writeError(ctx, fasthttp.StatusInternalServerError, typeServer, "internal_error",
				"the gateway failed to handle this request")
		}
		h.end(r, logged)
	}()
	if bytes.HasPrefix(path, []byte("/v1/")) && ctx.IsOptions() {
		preflight(ctx)
		return
	}
	switch string(path) {
	case "/v1/chat/completions", "/chat/completions":
		h.serveOp(r, provider.OpChat)
	case "/v1/completions", "/completions":
		h.serveOp(r, provider.OpCompletions)
	case "/v1/embeddings", "/embeddings":
		h.serveOp(r, provider.OpEmbeddings)
	case "/v1/messages":
		// Anthropic's Messages API: the chat path with another codec (messages.go).
		h.serveOp(r, provider.OpChat)
	case "/v1/messages/count_tokens":
		h.countTokens(r) // count_tokens.go
	case "/v1/responses", "/responses":
		h.serveOp(r, provider.OpResponses) // responses.go
	case "/v1/responses/", "/v1/responses/cancel", "/v1/responses/input_items":
		in.writeError(ctx, fasthttp.StatusNotFound, typeNotFound, "not_found", "the path names no response id")
	case "/v1/models", "/models":
		h.models(r)
	case "/health", "/v1/health":
		h.pages.Health(ctx)
	case "/healthz":
		logged = false // probes and scrapes would drown the requests
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"alive"}`)
	case "/readyz":
		logged = false
		h.pages.Ready(ctx)
	case "/metrics":
		logged = false
		h.pages.Metrics(ctx)
	default:
		if rest, ok := bytes.CutPrefix(path, []byte("/v1/responses/")); ok {
			h.responseCall(r, rest)
			return
		}
		// Batches and other Anthropic paths answer in Anthropic's shape: the
		// Anthropic clients that call them parse that shape.
		in.writeError(ctx, fasthttp.StatusNotFound, typeNotFound, "not_found",
			"unknown endpoint "+strconv.Quote(string(path)))
	}
}

// end finishes a request after its handler: the response headers every answer
// carries (set last: error answers reset the headers), its access-log line unless a
// stream will write it when it ends, and the request value back to the pool.
func (h *Handler) end(r *request, logged bool) {
	ctx := r.ctx
	ctx.Response.Header.SetBytesV("X-Request-Id", r.id)
	if bytes.HasPrefix(ctx.Path(), []byte("/v1/")) {
		ctx.Response.Header.Set("Access-Control-Allow-Origin", "*")
	}
	if !r.streaming {
		rec := &r.rec
		rec.Status = ctx.Response.StatusCode()
		body := ctx.Response.Body()
		u := jsonscan.NoUsage
		if r.model != nil && (r.metered.backend != nil || r.metered.ticket.Held()) {
			if rec.Status < 300 {
				u, _ = jsonscan.ScanUsage(body)
				if r.op == provider.OpEmbeddings && u.Input >= 0 {
					u.Output = 0 // embeddings produce no tokens
				}
				if u.Input < 0 {
					r.metered.inputEstimate = provider.EstimateTokens(ctx.PostBody())
				}
			} else {
				u = jsonscan.Usage{} // an error answer: no tokens
			}
			r.metered.key, r.metered.model = r.user.ID, r.model
			h.settle(&r.metered, u, int64(len(body)+3)/4)
		}
		if logged && h.opts.AccessLog != nil || r.trace.span != nil {
			rec.BytesOut = int64(len(body))
			rec.Duration = time.Since(rec.Time)
			if rec.Status < 300 {
				rec.InputTokens, rec.OutputTokens = u.Input, u.Output
			}
			if logged {
				h.opts.AccessLog.Log(rec)
			}
			if r.trace.span != nil {
				var model []byte
				if rec.Status < 300 {
					model = jsonscan.ScanModel(body)
				}
				finishTrace(r.trace, rec.Status, rec.Backend, rec.NAttempts, u, model, "")
			}
		}
	}
	r.reset()
	requestPool.Put(r)
}

// preflight answers a CORS preflight on /v1/*. It allows the headers the browser asks
// for — the official SDKs send their own (x-stainless-*, anthropic-beta,
// anthropic-dangerous-direct-browser-access) — since the key, not the origin, is what
// authorizes a call; a list that is not header names gets the default one.
func preflight(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	if asked := ctx.Request.Header.Peek("Access-Control-Request-Headers"); len(asked) > 0 && len(asked) <= 2048 && headerList(asked) {
		h.SetBytesV("Access-Control-Allow-Headers", asked)
	} else {
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key, Anthropic-Version")
	}
	h.Set("Access-Control-Max-Age", "86400")
	h.Set("Access-Control-Allow-Origin", "*")
}

// headerList reports whether b is a comma-separated list of HTTP header names.
func headerList(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == ',', c == ' ':
		default:
			return false
		}
	}
	return true
}

// request is one client request's state on its way through the proxy, pooled so the
// hot path does not allocate. Everything the steps from routing to the last attempt
// share lives here rather than in their parameters.
type request struct {
	ctx *fasthttp.RequestCtx
	id  []byte // the request id: the client's X-Request-Id, or one made here
	rec accesslog.Record
	// streaming: a stream took the response over, and writes the access-log line
	// and ends the span when it ends.
	streaming bool
	trace     traced
	table     *routing.Table
	user      *routing.User
	model     *routing.Model
	op        provider.Op
	in        inbound
	stream    bool // the client asked for a stream and the operation has one
	now       time.Time

	fields jsonscan.Fields
	// backends are the model's backends this request may use — its configured ones,
	// or its wildcard's for a provider-addressed name — and cands index into them.
	backends []*routing.Backend
	// upstream is the upstream model a provider-addressed name names.
	upstream string
	cands    []balancer.Candidate
	// hops counts the fallback models the request moved on to.
	hops int
	// noneAvailable: candidates found no backend available now (503), a failure
	// the model's "any" fallback takes over.
	noneAvailable bool
	// chat is a /v1/messages body translated to an OpenAI chat request, with its
	// fields, once an attempt needed it (chatReady).
	chat       []byte
	chatFields jsonscan.Fields
	chatReady  bool
	// pin is the backend a Responses API continuation must use (responses.go).
	pin pinned
	// metered is what the request's usage is settled with (metering.go).
	metered metered
}

var requestPool = sync.Pool{New: func() any {
	return &request{cands: make([]balancer.Candidate, 0, 8), id: make([]byte, 0, maxRequestID)}
}}

// begin starts serving ctx: its start time, its request id, what the access log
// knows so far.
func (r *request) begin(ctx *fasthttp.RequestCtx, in inbound, ids *requestIDs) {
	r.ctx, r.in = ctx, in
	r.id = ids.of(ctx, r.id[:0])
	r.rec = accesslog.Record{Time: time.Now(), RequestID: r.id, BytesIn: len(ctx.Request.Body()),
		Client: ctx.RemoteAddr(), InputTokens: -1, OutputTokens: -1}
}

func (r *request) reset() {
	*r = request{fields: r.fields, cands: r.cands[:0], chat: r.chat[:0], id: r.id[:0]}
}

// table returns the table to serve from, or answers 503 before the first snapshot.
func (h *Handler) table(ctx *fasthttp.RequestCtx, in inbound) *routing.Table {
	t := h.rt.Table()
	switch {
	case t == nil:
		in.writeError(ctx, fasthttp.StatusServiceUnavailable, typeUnavailable, "no_config",
			"the gateway has not received its configuration yet")
		ctx.Response.Header.Set("Retry-After", "1")
	case h.opts.Freshness != nil && h.opts.Freshness.Stale():
		in.writeError(ctx, fasthttp.StatusServiceUnavailable, typeUnavailable, "config_stale",
			"the gateway has been cut off from its control plane for longer than it may serve its last configuration")
		ctx.Response.Header.Set("Retry-After", "5")
		return nil
	}
	return t
}

// identify takes the table to serve the request from and the key it comes with, or
// answers it (503 before the first snapshot, 401) and returns false.
func (h *Handler) identify(r *request) bool {
	t := h.table(r.ctx, r.in)
	if t == nil {
		return false
	}
	user := authenticate(r.ctx, t, r.rec.Time, r.in)
	if user == nil {
		return false
	}
	r.rec.Key = user.ID
	r.table, r.user, r.now = t, user, r.rec.Time
	return true
}

// authenticate returns the user for the request's Bearer token, or answers 401. On
// /v1/messages the token may come as x-api-key instead, as Anthropic clients send it.
func authenticate(ctx *fasthttp.RequestCtx, t *routing.Table, now time.Time, in inbound) *routing.User {
	auth := ctx.Request.Header.Peek("Authorization")
	const prefix = "Bearer "
	var token []byte
	if len(auth) > len(prefix) && bytes.EqualFold(auth[:len(prefix)], []byte(prefix)) {
		token = auth[len(prefix):]
	} else if in == inMessages {
		token = ctx.Request.Header.Peek("X-Api-Key")
	}
	token = bytes.TrimSpace(token)
	if len(token) == 0 {
		msg := "missing API key: send it as Authorization: Bearer <key>"
		if in == inMessages {
			msg = "missing API key: send it as x-api-key: <key> or Authorization: Bearer <key>"
		}
		in.writeError(ctx, fasthttp.StatusUnauthorized, typeAuth, "missing_api_key", msg)
		return nil
	}
	u := t.UserByToken(token)
	if u == nil || !u.Usable(now) { // enabled and not expired
		in.writeError(ctx, fasthttp.StatusUnauthorized, typeAuth, "invalid_api_key", "invalid API key")
		return nil
	}
	return u
}

func opPath(op provider.Op, in inbound) string {
	if in == inMessages {
		return "/v1/messages"
	}
	if in == inResponses {
		return "/v1/responses"
	}
	return "/v1/" + op.String()
}

// serveOp handles the POST endpoints: checks, candidate selection, then forward. in is
// the format the client speaks.
func (h *Handler) serveOp(r *request, op provider.Op) {
	ctx, in := r.ctx, r.in
	if h.opts.Tracer != nil {
		h.startRequest(r)
	}
	if !ctx.IsPost() {
		in.writeError(ctx, fasthttp.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed",
			"use POST for "+opPath(op, in))
		ctx.Response.Header.Set("Allow", "POST")
		return
	}
	if !h.identify(r) {
		return
	}
	if limit := r.table.Settings.MaxRequestBody; limit > 0 && uint64(len(ctx.PostBody())) > limit {
		in.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, typeInvalidRequest, "request_too_large",
			"the request body exceeds the gateway's size limit of "+strconv.FormatUint(limit, 10)+" bytes")
		return
	}
	r.op = op
	if !r.route() {
		return
	}
	admitted := false
	for {
		class := classAny
		if r.candidates() {
			if !admitted {
				if !h.admit(r) {
					return
				}
				admitted = true
			}
			r.model.Strategy.Order(r.cands)
			r.pinSession()
			class = h.forward(r)
		} else if !r.noneAvailable {
			return
		}
		r.model.Stats.Requests[backends.ClassOf(ctx.Response.StatusCode())].Add(1)
		if class == classNone || !r.fallBack(class) {
			break
		}
	}
	ctx.Response.Header.Set("X-Berry-Model", r.model.Name)
}

// Fallback classes, as indexes of config.FallbackClasses (classNone: the request
// ended; no fallback applies).
const (
	classNone          = -1
	classContextWindow = 0
	classContentFilter = 1
	classAny           = 2
)

// maxFallbacks bounds a fallback chain; import refuses cycles, this is the guard.
const maxFallbacks = 8

// fallBack moves the request on to its model's fallback for an error class, or
// reports that there is none to take: the answer already set stands. A continuation
// of a stored response never moves (no other model's backend holds it), nor does a
// request that forced a backend.
func (r *request) fallBack(class int) bool {
	fb := r.model.Fallback(class)
	if fb == nil || !fb.Enabled || !r.user.Allowed(fb) || r.pin.backend != nil || r.fields.Backend.Present() ||
		r.hops == maxFallbacks {
		return false
	}
	r.hops++
	r.model, r.backends, r.upstream = fb, fb.Backends, ""
	r.cands = r.cands[:0]
	r.rec.Model = fb.Name
	return true
}

// pinSession applies the model's session affinity: requests with the same value
// (a header, or the body's "user") go to the same backend while it is a candidate.
func (r *request) pinSession() {
	var v []byte
	switch r.model.Affinity {
	case routing.AffinityUser:
		if r.fields.User.Present() {
			v = r.ctx.PostBody()[r.fields.User.Start:r.fields.User.End]
		}
	case routing.AffinityHeader:
		v = r.ctx.Request.Header.Peek(r.model.AffinityHeader)
	}
	if len(v) > 0 {
		balancer.Pin(r.cands, balancer.HashKey(v))
	}
}

// route reads the routing fields, finds the model and checks the key may use it now,
// or answers the request and returns false.
func (r *request) route() bool {
	ctx, body := r.ctx, r.ctx.PostBody()
	if err := jsonscan.Scan(body, &r.fields); err != nil {
		r.in.writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "invalid_json", err.Error())
		return false
	}
	if !r.fields.Model.Present() {
		r.in.writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "missing_model",
			`the request body has no "model" field`)
		return false
	}
	raw, ok := jsonscan.Unescaped(body, r.fields.Model)
	if ok {
		r.model = r.table.Model(raw)
	} else {
		r.model = r.table.ModelByName(jsonscan.String(body, r.fields.Model))
	}
	if r.model != nil {
		r.backends = r.model.Backends
	} else if bytes.IndexByte(raw, '/') >= 0 || !ok {
		r.model, r.upstream = r.table.ProviderAddressed(jsonscan.String(body, r.fields.Model))
		if r.model != nil {
			r.backends = r.model.Wildcard
		}
	}
	if r.model != nil {
		r.rec.Model = r.model.Name
		r.routed()
	}
	if r.model == nil || !r.model.Enabled {
		r.in.writeError(ctx, fasthttp.StatusNotFound, typeNotFound, "model_not_found",
			fmt.Sprintf("model %s does not exist or is not enabled", body[r.fields.Model.Start:r.fields.Model.End]))
		return false
	}
	if !r.user.Allowed(r.model) {
		r.in.writeError(ctx, fasthttp.StatusForbidden, typePermission, "model_not_allowed",
			"this API key may not use model "+strconv.Quote(r.model.Name))
		return false
	}
	r.stream = r.fields.Stream && r.op != provider.OpEmbeddings
	if r.op == provider.OpResponses && r.fields.PreviousResponse.Present() {
		return r.continuation()
	}
	return true
}

// candidates fills r.cands with the model's backends this request may use now, or
// answers the request (400 for a bad forced backend or an unsupported operation, 503
// when nothing is available) and returns false.
func (r *request) candidates() bool {
	if r.pin.backend != nil {
		return r.pinnedCandidate()
	}
	ctx, model, now := r.ctx, r.model, r.now
	r.noneAvailable = false
	var forced []byte
	var forcedName string
	if r.fields.Backend.Present() {
		raw, ok := jsonscan.Unescaped(ctx.PostBody(), r.fields.Backend)
		if !ok {
			raw = []byte(jsonscan.String(ctx.PostBody(), r.fields.Backend))
		}
		forced, forcedName = raw, string(raw)
	}
	matched, usable, supporting := 0, 0, 0
	var soonest time.Time
	for i, b := range r.backends {
		if forced != nil && string(forced) != b.Provider.ID {
			continue
		}
		matched++
		if !b.Enabled || !b.Provider.Enabled || !r.user.SeesBackend(b) {
			continue
		}
		usable++
		if !supports(b.Provider, r.op) {
			continue
		}
		supporting++
		s := b.State
		if !s.Available(now) {
			if at := s.AvailableAt(now, r.table.Settings.BreakerTimeout); !at.IsZero() && (soonest.IsZero() || at.Before(soonest)) {
				soonest = at
			}
			continue
		}
		r.cands = append(r.cands, candidateOf(i, b, now, r.stream))
	}
	switch {
	case forced != nil && matched == 0:
		r.in.writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "invalid_backend",
			"backend "+strconv.Quote(forcedName)+" is not a provider of model "+strconv.Quote(model.Name))
		return false
	case forced != nil && usable == 0:
		r.in.writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "backend_not_allowed",
			"backend "+strconv.Quote(forcedName)+" is disabled or not available to this API key for model "+strconv.Quote(model.Name))
		return false
	case usable > 0 && supporting == 0:
		r.in.writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "unsupported_operation",
			"model "+strconv.Quote(model.Name)+" has no backend that supports "+opPath(r.op, r.in))
		return false
	case len(r.cands) == 0:
		r.noneAvailable = true
		retry := 5
		if !soonest.IsZero() {
			retry = max(ceilSeconds(soonest.Sub(now)), 1)
		}
		r.in.writeError(ctx, fasthttp.StatusServiceUnavailable, typeUnavailable, "no_backend_available",
			"no backend is available for model "+strconv.Quote(model.Name)+"; retry later")
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retry))
		return false
	}
	return true
}

// candidateOf is backend i of a model as its strategy sees it.
func candidateOf(i int, b *routing.Backend, now time.Time, stream bool) balancer.Candidate {
	s := b.State
	lat := s.Latency.Latency(now)
	if stream {
		lat = s.Latency.FirstToken(now)
	}
	return balancer.Candidate{Index: i, Weight: b.Weight, Priority: b.Priority, Latency: lat, InFlight: s.InFlight.Load(), Seed: b.Seed}
}

// supports reports whether a provider can serve op: the Responses API natively, or
// translated into chat.
func supports(p *routing.Provider, op provider.Op) bool {
	if op == provider.OpResponses {
		return p.ResponsesNative || p.Adapter.Supports(provider.OpChat)
	}
	return p.Adapter.Supports(op)
}

// attempts is the retry budget: settings.max_retries, unless the provider tried
// first sets its own.
func (r *request) attempts() int {
	n := r.table.Settings.MaxRetries
	if p := r.backends[r.cands[0].Index].Provider; p.MaxRetries > 0 {
		n = p.MaxRetries
	}
	return max(n, 1)
}

func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
