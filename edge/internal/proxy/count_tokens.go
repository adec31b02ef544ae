package proxy

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/edge/internal/routing"
	"github.com/berry-gateway/berry/pkg/provider"
)

// countTokens serves POST /v1/messages/count_tokens: routed like a Messages request
// to the model's backends, passed to the first available one whose upstream counts
// tokens (Anthropic), else estimated (provider.EstimateTokens) and marked so, with an
// "estimated" member and an X-Berry-Estimated header. It uses no rate-limit quota, as
// Anthropic's own endpoint is free.
func (h *Handler) countTokens(r *request) {
	ctx, in := r.ctx, r.in
	if h.opts.Tracer != nil {
		h.startRequest(r)
	}
	if !ctx.IsPost() {
		in.writeError(ctx, fasthttp.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed",
			"use POST for /v1/messages/count_tokens")
		ctx.Response.Header.Set("Allow", "POST")
		return
	}
	if !h.identify(r) {
		return
	}
	r.op = provider.OpChat
	if !r.route() {
		return
	}
	for _, b := range r.backends {
		if !b.Enabled || !b.Provider.Enabled || !r.user.SeesBackend(b) || !provider.CountsTokens(b.Provider.Adapter) ||
			!b.State.Available(r.now) {
			continue
		}
		if h.countUpstream(r, b) {
			return
		}
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("X-Berry-Estimated", "true")
	out := append(make([]byte, 0, 48), `{"input_tokens":`...)
	out = strconv.AppendInt(out, provider.EstimateTokens(ctx.PostBody()), 10)
	ctx.Response.SetBodyRaw(append(out, `,"estimated":true}`...))
}

// countUpstream asks one backend to count; false when it could not answer (the
// caller then estimates). Its answer, success or error, is the client's.
func (h *Handler) countUpstream(r *request, b *routing.Backend) bool {
	ctx := r.ctx
	up := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(up)
	defer fasthttp.ReleaseResponse(resp)
	provider.WriteCountTokensRequest(up, &b.Provider.Account, r.upstreamModel(b), ctx.PostBody(), &r.fields)
	if beta := ctx.Request.Header.Peek("Anthropic-Beta"); len(beta) > 0 {
		up.Header.SetBytesV("Anthropic-Beta", beta)
	}
	up.SetTimeout(b.Provider.Timeout)
	up.Header.SetBytesV("X-Request-Id", r.id)
	r.rec.AddAttempt(b.State.Label, "")
	if err := h.up.do(up, resp, false, false); err != nil || retryable(resp.StatusCode()) {
		h.log.Warn("token count failed upstream; estimating", "request_id", string(r.id), "provider", b.Provider.ID,
			"status", resp.StatusCode(), "err", err)
		return false
	}
	r.rec.Backend = b.State.Label
	ctx.Response.Reset()
	ctx.SetStatusCode(resp.StatusCode())
	ctx.SetContentType("application/json")
	copyRequestIDs(&ctx.Response.Header, &resp.Header)
	ctx.Response.SetBody(resp.Body())
	return true
}
