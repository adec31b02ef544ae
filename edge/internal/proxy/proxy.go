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
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/ratelimit"
	"github.com/berry-gateway/berry/edge/internal/routing"
	"github.com/berry-gateway/berry/pkg/balancer"
	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/provider"
)

// TableSource gives the routing table to serve from; nil until the first snapshot.
type TableSource interface {
	Table() *routing.Table
}

// Defaults for zero Options.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultRequestTimeout = 30 * time.Second
)

// Options configure a Handler; the zero value gives the defaults.
type Options struct {
	Log *slog.Logger
	// ConnectTimeout bounds dialing an upstream.
	ConnectTimeout time.Duration
	// StreamIdleTimeout bounds each gap between chunks once a stream's content flows;
	// 0 means the request timeout (the time-to-first-byte bound) applies to gaps too.
	StreamIdleTimeout time.Duration
	// MetricsToken, when set, must be sent as "Authorization: Bearer <token>" to read
	// GET /metrics. When empty, /metrics answers loopback clients only.
	MetricsToken string
}

// Handler serves the edge's client API. Create it with New or NewWithOptions.
type Handler struct {
	tables    TableSource
	opts      Options
	log       *slog.Logger
	buffered  *fasthttp.Client // whole-response deadline
	streaming *fasthttp.Client // per-read deadlines
	states    backends.Registry
	limits    ratelimit.Registry
	inFlight  atomic.Int64
}

// New returns a Handler that routes with the tables from src.
func New(src TableSource, log *slog.Logger) *Handler {
	return NewWithOptions(src, Options{Log: log})
}

// NewWithOptions returns a Handler configured by o.
func NewWithOptions(src TableSource, o Options) *Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	return &Handler{
		tables:    src,
		opts:      o,
		log:       o.Log,
		buffered:  newClient(o.ConnectTimeout, false),
		streaming: newClient(o.ConnectTimeout, true),
	}
}

// Bind attaches this handler's runtime state (breakers, latency, limits) to t. The
// handler does it on first use of a table; the health checker calls it too.
func (h *Handler) Bind(t *routing.Table) { t.Bind(&h.states, &h.limits) }

// Backends returns the runtime-state registry, for health probing and tests.
func (h *Handler) Backends() *backends.Registry { return &h.states }

// ServeHTTP is the fasthttp request handler.
func (h *Handler) ServeHTTP(ctx *fasthttp.RequestCtx) {
	// fasthttp does not recover handler panics: one bad request (or adapter) must not
	// take the edge down with every other request in flight.
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("request handler panicked", "path", string(ctx.Path()), "panic", fmt.Sprint(p))
			writeError(ctx, fasthttp.StatusInternalServerError, typeServer, "internal_error",
				"the gateway failed to handle this request")
			if string(ctx.Path()) == "/v1/messages" {
				toMessagesError(ctx)
			}
		}
	}()
	path := ctx.Path()
	cors := bytes.HasPrefix(path, []byte("/v1/"))
	if cors && ctx.IsOptions() {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		ctx.Response.Header.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		ctx.Response.Header.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key, Anthropic-Version")
		ctx.Response.Header.Set("Access-Control-Max-Age", "86400")
		ctx.Response.Header.Set("Access-Control-Allow-Origin", "*")
		return
	}
	switch string(path) {
	case "/v1/chat/completions", "/chat/completions":
		h.serveOp(ctx, provider.OpChat, inOpenAI)
	case "/v1/completions", "/completions":
		h.serveOp(ctx, provider.OpCompletions, inOpenAI)
	case "/v1/embeddings", "/embeddings":
		h.serveOp(ctx, provider.OpEmbeddings, inOpenAI)
	case "/v1/messages":
		// Anthropic's Messages API: the chat path with another codec (messages.go).
		h.serveOp(ctx, provider.OpChat, inMessages)
		toMessagesError(ctx)
	case "/v1/models", "/models":
		h.models(ctx)
	case "/health", "/v1/health":
		h.health(ctx)
	case "/healthz":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"alive"}`)
	case "/readyz":
		h.readyz(ctx)
	case "/metrics":
		h.metrics(ctx)
	default:
		writeError(ctx, fasthttp.StatusNotFound, typeNotFound, "not_found",
			"unknown endpoint "+strconv.Quote(string(path)))
		if bytes.HasPrefix(path, []byte("/v1/messages/")) {
			toMessagesError(ctx) // count_tokens, batches: Anthropic clients parse this shape
		}
	}
	if cors {
		// Set last: error answers reset the response headers.
		ctx.Response.Header.Set("Access-Control-Allow-Origin", "*")
	}
}

// request is the per-request scratch space, pooled so the hot path does not allocate.
type request struct {
	fields jsonscan.Fields
	cands  []balancer.Candidate
	in     inbound
	// chat is a /v1/messages body translated to an OpenAI chat request, with its
	// fields, once an attempt needed it (chatReady).
	chat       []byte
	chatFields jsonscan.Fields
	chatReady  bool
}

var requestPool = sync.Pool{New: func() any { return &request{cands: make([]balancer.Candidate, 0, 8)} }}

func (h *Handler) table(ctx *fasthttp.RequestCtx) *routing.Table {
	t := h.tables.Table()
	if t == nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, typeUnavailable, "no_config",
			"the gateway has not received its configuration yet")
		ctx.Response.Header.Set("Retry-After", "1")
		return nil
	}
	h.Bind(t)
	return t
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
		writeError(ctx, fasthttp.StatusUnauthorized, typeAuth, "missing_api_key", msg)
		return nil
	}
	u := t.UserByToken(token)
	if u == nil || !u.Usable(now) { // enabled and not expired
		writeError(ctx, fasthttp.StatusUnauthorized, typeAuth, "invalid_api_key", "invalid API key")
		return nil
	}
	return u
}

func opPath(op provider.Op, in inbound) string {
	if in == inMessages {
		return "/v1/messages"
	}
	return "/v1/" + op.String()
}

// serveOp handles the POST endpoints: checks, candidate selection, then forward. in is
// the format the client speaks.
func (h *Handler) serveOp(ctx *fasthttp.RequestCtx, op provider.Op, in inbound) {
	if !ctx.IsPost() {
		writeError(ctx, fasthttp.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed",
			"use POST for "+opPath(op, in))
		ctx.Response.Header.Set("Allow", "POST")
		return
	}
	t := h.table(ctx)
	if t == nil {
		return
	}
	now := time.Now()
	user := authenticate(ctx, t, now, in)
	if user == nil {
		return
	}
	body := ctx.PostBody()
	if limit := t.Settings.GetMaxRequestBodyBytes(); limit > 0 && uint64(len(body)) > limit {
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, typeInvalidRequest, "request_too_large",
			"the request body exceeds the gateway's size limit of "+strconv.FormatUint(limit, 10)+" bytes")
		return
	}
	r := requestPool.Get().(*request)
	r.in = in
	defer func() {
		r.cands, r.chat, r.chatReady = r.cands[:0], r.chat[:0], false
		requestPool.Put(r)
	}()
	if err := jsonscan.Scan(body, &r.fields); err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "invalid_json", err.Error())
		return
	}
	if !r.fields.Model.Present() {
		writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "missing_model",
			`the request body has no "model" field`)
		return
	}
	var model *routing.Model
	if raw, ok := jsonscan.Unescaped(body, r.fields.Model); ok {
		model = t.Model(raw)
	} else {
		model = t.ModelByName(jsonscan.String(body, r.fields.Model))
	}
	if model == nil || !model.Enabled {
		writeError(ctx, fasthttp.StatusNotFound, typeNotFound, "model_not_found",
			fmt.Sprintf("model %s does not exist or is not enabled", body[r.fields.Model.Start:r.fields.Model.End]))
		return
	}
	if !user.Allowed(model) {
		writeError(ctx, fasthttp.StatusForbidden, typePermission, "model_not_allowed",
			"this API key may not use model "+strconv.Quote(model.Name))
		return
	}
	if user.Limiter != nil {
		if ok, wait := user.Limiter.Allow(now); !ok {
			model.Stats.Limited.Add(1)
			writeError(ctx, fasthttp.StatusTooManyRequests, typeRateLimit, "rate_limit_exceeded",
				"rate limit exceeded for this API key; retry after "+strconv.Itoa(ceilSeconds(wait))+"s")
			ctx.Response.Header.Set("Retry-After", strconv.Itoa(ceilSeconds(wait)))
			return
		}
	}
	streaming := r.fields.Stream && op != provider.OpEmbeddings
	if !h.candidates(ctx, t, r, user, model, op, streaming, now) {
		return
	}
	model.Strategy.Order(r.cands)

	attempts := int(t.Settings.GetMaxRetries())
	if p := model.Backends[r.cands[0].Index].Provider; p.MaxRetries > 0 {
		attempts = p.MaxRetries // the provider tried first sets the budget
	}
	attempts = max(attempts, 1)
	h.forward(ctx, t, r, model, op, streaming, attempts)
	model.Stats.Requests[backends.ClassOf(ctx.Response.StatusCode())].Add(1)
}

// candidates fills r.cands with the model's backends this request may use now, or
// answers the request (400 for a bad forced backend or an unsupported operation, 503
// when nothing is available) and returns false.
func (h *Handler) candidates(ctx *fasthttp.RequestCtx, t *routing.Table, r *request, user *routing.User,
	model *routing.Model, op provider.Op, streaming bool, now time.Time) bool {
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
	breakerTimeout := time.Duration(t.Settings.GetCircuitBreakerTimeoutSeconds()) * time.Second
	if breakerTimeout <= 0 {
		breakerTimeout = 60 * time.Second
	}
	for i, b := range model.Backends {
		if forced != nil && string(forced) != b.Provider.ID {
			continue
		}
		matched++
		if !b.Enabled || !b.Provider.Enabled || !user.SeesBackend(b) {
			continue
		}
		usable++
		if !b.Provider.Adapter.Supports(op) {
			continue
		}
		supporting++
		s := b.State
		if !s.Available(now) {
			if at := s.AvailableAt(now, breakerTimeout); !at.IsZero() && (soonest.IsZero() || at.Before(soonest)) {
				soonest = at
			}
			continue
		}
		lat := s.Latency.Latency(now)
		if streaming {
			lat = s.Latency.FirstToken(now)
		}
		r.cands = append(r.cands, balancer.Candidate{
			Index: i, Weight: b.Weight, Priority: b.Priority, Latency: lat, InFlight: s.InFlight.Load(),
		})
	}
	switch {
	case forced != nil && matched == 0:
		writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "invalid_backend",
			"backend "+strconv.Quote(forcedName)+" is not a provider of model "+strconv.Quote(model.Name))
		return false
	case forced != nil && usable == 0:
		writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "backend_not_allowed",
			"backend "+strconv.Quote(forcedName)+" is disabled or not available to this API key for model "+strconv.Quote(model.Name))
		return false
	case usable > 0 && supporting == 0:
		writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "unsupported_operation",
			"model "+strconv.Quote(model.Name)+" has no backend that supports "+opPath(op, r.in))
		return false
	case len(r.cands) == 0:
		retry := 5
		if !soonest.IsZero() {
			retry = max(ceilSeconds(soonest.Sub(now)), 1)
		}
		writeError(ctx, fasthttp.StatusServiceUnavailable, typeUnavailable, "no_backend_available",
			"no backend is available for model "+strconv.Quote(model.Name)+"; retry later")
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retry))
		return false
	}
	return true
}

func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
