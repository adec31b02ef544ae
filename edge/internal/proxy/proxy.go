// Package proxy is the edge's client-facing HTTP handler: it authenticates a request,
// routes it by model to a backend chosen by the model's strategy, and passes the body
// through, streaming or not, failing over to the next backend when one fails.
package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/berry-gateway/berry/edge/internal/routing"
	"github.com/berry-gateway/berry/pkg/balancer"
	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/provider"
	"github.com/valyala/fasthttp"
)

// TableSource gives the routing table to serve from; nil until the first snapshot.
type TableSource interface {
	Table() *routing.Table
}

// Handler serves the edge's client API.
type Handler struct {
	tables TableSource
	client *fasthttp.Client
	log    *slog.Logger
}

// New returns a Handler that routes with the tables from src.
func New(src TableSource, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{
		tables: src,
		log:    log,
		client: &fasthttp.Client{
			Name:                     "berry-edge",
			MaxConnsPerHost:          4096,
			MaxIdleConnDuration:      90 * time.Second,
			ReadBufferSize:           16 << 10,
			DisablePathNormalizing:   true,
			NoDefaultUserAgentHeader: false,
		},
	}
}

// ServeHTTP is the fasthttp request handler.
func (h *Handler) ServeHTTP(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/v1/chat/completions", "/chat/completions":
		h.chat(ctx)
	case "/v1/models", "/models":
		h.models(ctx)
	case "/health", "/v1/health":
		h.health(ctx)
	default:
		writeError(ctx, fasthttp.StatusNotFound, typeNotFound, "not_found",
			"unknown endpoint "+strconv.Quote(string(ctx.Path())))
	}
}

// request is the per-request scratch space, pooled so the hot path does not allocate.
type request struct {
	fields jsonscan.Fields
	cands  []balancer.Candidate
}

var requestPool = sync.Pool{New: func() any { return &request{cands: make([]balancer.Candidate, 0, 8)} }}

func (h *Handler) table(ctx *fasthttp.RequestCtx) *routing.Table {
	t := h.tables.Table()
	if t == nil {
		ctx.Response.Header.Set("Retry-After", "1")
		writeError(ctx, fasthttp.StatusServiceUnavailable, typeUnavailable, "no_config",
			"the gateway has not received its configuration yet")
	}
	return t
}

// authenticate returns the user for the request's Bearer token, or answers 401.
func authenticate(ctx *fasthttp.RequestCtx, t *routing.Table) *routing.User {
	auth := ctx.Request.Header.Peek("Authorization")
	const prefix = "Bearer "
	if len(auth) <= len(prefix) || !bytes.EqualFold(auth[:len(prefix)], []byte(prefix)) {
		writeError(ctx, fasthttp.StatusUnauthorized, typeAuth, "missing_api_key",
			"missing API key: send it as Authorization: Bearer <key>")
		return nil
	}
	u := t.UserByToken(bytes.TrimSpace(auth[len(prefix):]))
	if u == nil || !u.Enabled {
		writeError(ctx, fasthttp.StatusUnauthorized, typeAuth, "invalid_api_key", "invalid API key")
		return nil
	}
	return u
}

func (h *Handler) chat(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		writeError(ctx, fasthttp.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed",
			"use POST for /v1/chat/completions")
		return
	}
	t := h.table(ctx)
	if t == nil {
		return
	}
	user := authenticate(ctx, t)
	if user == nil {
		return
	}
	r := requestPool.Get().(*request)
	defer func() {
		r.cands = r.cands[:0]
		requestPool.Put(r)
	}()
	body := ctx.PostBody()
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

	for i, b := range model.Backends {
		if b.Enabled && b.Provider.Enabled {
			r.cands = append(r.cands, balancer.Candidate{Index: i, Weight: b.Weight, Priority: b.Priority})
		}
	}
	if len(r.cands) == 0 {
		ctx.Response.Header.Set("Retry-After", "5")
		writeError(ctx, fasthttp.StatusServiceUnavailable, typeUnavailable, "no_backend",
			"no backend is available for model "+strconv.Quote(model.Name))
		return
	}
	model.Strategy.Order(r.cands)

	attempts := int(t.Settings.GetMaxRetries())
	if attempts < 1 {
		attempts = 1
	}
	if attempts > len(r.cands) {
		attempts = len(r.cands)
	}
	h.forward(ctx, r, model, attempts)
}

// forward tries the ordered backends until one answers. A connection error, a timeout,
// 429 or 5xx moves on to the next; anything else is the answer.
func (h *Handler) forward(ctx *fasthttp.RequestCtx, r *request, model *routing.Model, attempts int) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	streaming := r.fields.Stream
	var lastErr error
	lastStatus := 0
	for _, c := range r.cands[:attempts] {
		b := model.Backends[c.Index]
		p := b.Provider
		req.Reset()
		if err := p.Adapter.WriteRequest(req, &p.Account, provider.OpChat, b.UpstreamModel, ctx.PostBody(), &r.fields); err != nil {
			lastErr, lastStatus = err, 0
			h.log.Warn("cannot build upstream request", "model", model.ID, "provider", p.ID, "err", err)
			continue
		}
		if streaming {
			req.Header.Set("Accept", "text/event-stream")
		}
		// Streams get a wider bound: this deadline covers the whole body, and a long
		// generation must not be cut at the first-byte timeout.
		timeout := p.Timeout
		if streaming {
			timeout *= 10
		}
		req.SetTimeout(timeout)
		resp.Reset()
		resp.StreamBody = streaming

		err := h.client.Do(req, resp)
		if err != nil {
			lastErr, lastStatus = err, 0
			h.log.Warn("upstream request failed", "model", model.ID, "provider", p.ID, "err", err)
			continue
		}
		status := resp.StatusCode()
		if status == fasthttp.StatusTooManyRequests || status >= 500 {
			lastErr, lastStatus = nil, status
			copyUpstreamResponse(ctx, resp) // kept in case every backend fails
			h.log.Warn("upstream answered with an error", "model", model.ID, "provider", p.ID, "status", status)
			continue
		}
		if streaming && status == fasthttp.StatusOK {
			h.stream(ctx, resp, model.ID, p.ID)
			return
		}
		copyUpstreamResponse(ctx, resp)
		fasthttp.ReleaseResponse(resp)
		return
	}
	fasthttp.ReleaseResponse(resp)
	if lastStatus != 0 {
		return // the last upstream error, already copied, with its real status
	}
	switch {
	case errors.Is(lastErr, fasthttp.ErrTimeout):
		writeError(ctx, fasthttp.StatusGatewayTimeout, typeTimeout, "upstream_timeout",
			"every backend for model "+strconv.Quote(model.Name)+" timed out")
	default:
		writeError(ctx, fasthttp.StatusBadGateway, typeUpstream, "upstream_unreachable",
			"no backend for model "+strconv.Quote(model.Name)+" could be reached")
	}
}

// copyUpstreamResponse moves status, content type, request id and body of a buffered
// upstream response into the client response without copying the body bytes.
func copyUpstreamResponse(ctx *fasthttp.RequestCtx, resp *fasthttp.Response) {
	body := resp.Body() // reads a streamed body to its end
	ctx.Response.Reset()
	ctx.SetStatusCode(resp.StatusCode())
	ct := resp.Header.ContentType()
	if len(ct) == 0 {
		ct = []byte("application/json")
	}
	ctx.Response.Header.SetContentTypeBytes(ct)
	if id := resp.Header.Peek("X-Request-Id"); len(id) > 0 {
		ctx.Response.Header.SetBytesV("X-Request-Id", id)
	}
	old := ctx.Response.SwapBody(body)
	resp.SwapBody(old)
}

var streamBufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// stream relays an upstream SSE body to the client as it arrives, flushing every read,
// and takes ownership of resp. An upstream failure after the first byte ends the stream
// with an SSE error event, so the client never mistakes it for a complete answer.
func (h *Handler) stream(ctx *fasthttp.RequestCtx, resp *fasthttp.Response, modelID, providerID string) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("X-Accel-Buffering", "no") // nginx in front must not buffer
	log := h.log
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		bp := streamBufPool.Get().(*[]byte)
		defer streamBufPool.Put(bp)
		buf := *bp
		src := resp.BodyStream()
		var readErr error
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					readErr = werr
					break
				}
				if werr := w.Flush(); werr != nil {
					// The client went away: stop reading so the upstream call ends too.
					readErr = werr
					break
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				log.Warn("upstream stream failed", "model", modelID, "provider", providerID, "err", err)
				ev := append([]byte("\n\ndata: "), appendError(nil, typeUpstream, "upstream_stream_error",
					"the upstream stream failed: "+err.Error())...)
				_, _ = w.Write(append(ev, "\n\n"...))
				_ = w.Flush()
				readErr = err
				break
			}
		}
		if rc, ok := src.(fasthttp.ReadCloserWithError); ok {
			_ = rc.CloseWithError(readErr)
		} else {
			_ = resp.CloseBodyStream()
		}
		fasthttp.ReleaseResponse(resp)
	})
}

func (h *Handler) models(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		ctx.Response.Header.Set("Allow", "GET")
		writeError(ctx, fasthttp.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed", "use GET")
		return
	}
	t := h.table(ctx)
	if t == nil {
		return
	}
	user := authenticate(ctx, t)
	if user == nil {
		return
	}
	out := append(make([]byte, 0, 256), `{"object":"list","data":[`...)
	n := 0
	for _, name := range t.ModelNames {
		m := t.ModelByName(name)
		if !m.Enabled || !user.Allowed(m) {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, `{"id":`...)
		out = strconv.AppendQuote(out, m.Name)
		out = append(out, `,"object":"model","created":0,"owned_by":"berry"}`...)
	}
	out = append(out, "]}"...)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(out)
}

func (h *Handler) health(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	t := h.tables.Table()
	if t == nil {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"status":"unavailable","reason":"no configuration yet"}`)
		return
	}
	ctx.SetBodyString(`{"status":"ok","config_version":` + strconv.FormatUint(t.Version, 10) + `}`)
}
