package proxy

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/routing"
	"github.com/berry-gateway/berry/pkg/provider"
)

// errNoContent is a stream that ended, or reported an error, before any content.
var errNoContent = errors.New("the upstream stream failed before its first content")

// errFirstByteTimeout is a stream whose first content did not come in time.
var errFirstByteTimeout = errors.New("no content from the upstream within the request timeout")

// failure is why one attempt did not produce the answer. status is the upstream HTTP
// status when it answered (its error body is then already in the client response,
// kept in case every backend fails); otherwise err says what went wrong.
type failure struct {
	status int
	err    error
}

func (f failure) timeout() bool {
	return errors.Is(f.err, fasthttp.ErrTimeout) || errors.Is(f.err, os.ErrDeadlineExceeded) ||
		errors.Is(f.err, errFirstByteTimeout)
}

// retryable reports whether an upstream status means "try another backend": rate
// limited, server errors, and authentication failures (the client's key is never sent
// upstream, so 401/403 there is the provider account's fault, not the client's).
func retryable(status int) bool {
	return status == fasthttp.StatusTooManyRequests || status >= 500 ||
		status == fasthttp.StatusUnauthorized || status == fasthttp.StatusForbidden
}

// forward tries the ordered candidates until one answers, up to attempts distinct
// backends.
func (h *Handler) forward(ctx *fasthttp.RequestCtx, t *routing.Table, r *request, model *routing.Model,
	op provider.Op, streaming bool, attempts int) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	tried := 0
	var last failure
	for _, c := range r.cands {
		if tried == attempts {
			break
		}
		b := model.Backends[c.Index]
		// Claims the half-open trial; another request may have taken it meanwhile.
		if !b.State.Breaker.Acquire(time.Now()) {
			continue
		}
		tried++
		if tried > 1 {
			model.Stats.Retries.Add(1)
		}
		f, done := h.attempt(ctx, t, req, r, model, b, op, streaming)
		if done {
			if tried > 1 {
				model.Stats.Failovers.Add(1)
			}
			return
		}
		last = f
	}
	if last.status != 0 {
		return // the last upstream error, already in the response, with its real status
	}
	switch {
	case tried == 0:
		writeError(ctx, fasthttp.StatusServiceUnavailable, typeUnavailable, "no_backend_available",
			"no backend is available for model "+strconv.Quote(model.Name)+"; retry later")
		ctx.Response.Header.Set("Retry-After", "1")
	case errors.Is(last.err, errNoContent):
		writeError(ctx, fasthttp.StatusBadGateway, typeUpstream, "upstream_stream_error",
			"every backend for model "+strconv.Quote(model.Name)+" failed before sending content")
	case last.timeout():
		writeError(ctx, fasthttp.StatusGatewayTimeout, typeTimeout, "upstream_timeout",
			"every backend for model "+strconv.Quote(model.Name)+" timed out")
	default:
		writeError(ctx, fasthttp.StatusBadGateway, typeUpstream, "upstream_unreachable",
			"no backend for model "+strconv.Quote(model.Name)+" could be reached")
	}
}

// attempt sends the request to one backend. done means the client's answer is set
// (a success, or an upstream answer that is not worth retrying elsewhere).
func (h *Handler) attempt(ctx *fasthttp.RequestCtx, t *routing.Table, req *fasthttp.Request, r *request,
	model *routing.Model, b *routing.Backend, op provider.Op, streaming bool) (_ failure, _ bool) {
	p, s := b.Provider, b.State
	counted := false // whether this attempt is in the in-flight counts
	defer func() {
		// An adapter bug must not leave a half-open trial claimed (the breaker would
		// never close) or the in-flight counts inflated; ServeHTTP answers the panic.
		if x := recover(); x != nil {
			s.Breaker.Release()
			if counted {
				s.InFlight.Add(-1)
				h.inFlight.Add(-1)
			}
			panic(x)
		}
	}()
	req.Reset()
	c := codecFor(r.in, p.Adapter)
	if err := r.writeRequest(req, ctx, c, &p.Account, p.Adapter, op, b.UpstreamModel); err != nil {
		s.Breaker.Release()
		if errors.Is(err, provider.ErrInvalidRequest) {
			// The client asked for something this provider cannot express (n > 1 for
			// Anthropic): the client's error, not a reason to try elsewhere.
			writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "unsupported_for_provider", err.Error())
			return failure{}, true
		}
		h.log.Warn("cannot build upstream request", "model", model.ID, "provider", p.ID, "err", err)
		return failure{err: err}, false
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	req.SetTimeout(timeout)
	client := h.buffered
	resp := fasthttp.AcquireResponse()
	if streaming {
		client = h.streaming
		req.Header.Set("Accept", "text/event-stream")
		resp.StreamBody = true
	}

	s.InFlight.Add(1)
	h.inFlight.Add(1)
	counted = true
	start := time.Now()
	err := client.Do(req, resp)
	if err != nil {
		h.finish(s, b.Stats, start, backends.ClassError, false, sampleFor(streaming))
		fasthttp.ReleaseResponse(resp)
		h.log.Warn("upstream request failed", "model", model.ID, "provider", p.ID, "err", err)
		return failure{err: err}, false
	}
	status := resp.StatusCode()
	if retryable(status) {
		if status == fasthttp.StatusTooManyRequests {
			if d := retryAfter(resp.Header.Peek("Retry-After"), start); d > 0 {
				s.Hold(start.Add(d))
			}
		}
		h.copyBuffered(ctx, resp, p.Adapter, op, c, r) // kept in case every backend fails
		h.finish(s, b.Stats, start, backends.ClassOf(status), false, sampleFor(streaming))
		fasthttp.ReleaseResponse(resp)
		h.log.Warn("upstream answered with an error", "model", model.ID, "provider", p.ID, "status", status)
		return failure{status: ctx.Response.StatusCode()}, false
	}
	if !streaming || status != fasthttp.StatusOK || !isEventStream(resp.Header.ContentType()) {
		// Not a stream (an upstream that ignored "stream": true answers JSON): relay it
		// as the buffered answer it is.
		h.copyBuffered(ctx, resp, p.Adapter, op, c, r)
		// A 4xx here is about the request, not the backend: the backend is healthy.
		h.finish(s, b.Stats, start, backends.ClassOf(status), true, sampleFor(streaming))
		fasthttp.ReleaseResponse(resp)
		return failure{}, true
	}
	return h.openStream(ctx, resp, model, b, op, c, r, start, timeout)
}

// sample says which latency estimate an attempt's duration feeds.
type sample uint8

const (
	sampleNone       sample = iota
	sampleTotal             // buffered answers: the whole call
	sampleFirstToken        // streams: a failure before content counts as a slow first token
)

func sampleFor(streaming bool) sample {
	if streaming {
		return sampleFirstToken
	}
	return sampleTotal
}

// finish records an attempt's end: in-flight counts, outcome counters, breaker and
// latency (a failure is a latency sample too, so a backend that times out ranks last).
// A completed stream's length says nothing about the backend's speed, so streams feed
// only the first-token estimate.
func (h *Handler) finish(s *backends.State, rs *backends.RouteStats, start time.Time, class backends.Class, ok bool, lat sample) {
	now := time.Now()
	d := now.Sub(start)
	s.InFlight.Add(-1)
	h.inFlight.Add(-1)
	rs.Requests[class].Add(1)
	s.Duration.Observe(d)
	switch lat {
	case sampleTotal:
		s.Latency.Observe(d, now)
	case sampleFirstToken:
		s.Latency.ObserveFirstToken(d, now)
	}
	if ok {
		s.Breaker.Success()
	} else {
		s.Breaker.Failure(now)
	}
}

// copyBuffered moves a buffered upstream answer into the client response: status,
// content type, request id and body, translated to the client's format where codec c
// needs it (errors on /v1/messages are reshaped later, by toMessagesError). The
// passthrough case swaps buffers instead of copying the body.
func (h *Handler) copyBuffered(ctx *fasthttp.RequestCtx, resp *fasthttp.Response, a provider.Adapter, op provider.Op,
	c codec, r *request) {
	body := resp.Body() // reads a streamed body to its end
	ctx.Response.Reset()
	// Statuses clients do not know (Anthropic's 529) are mapped; failover decisions
	// were made on the upstream's own status.
	ctx.SetStatusCode(provider.ClientStatus(a, op, resp.StatusCode()))
	copyRequestIDs(&ctx.Response.Header, &resp.Header)
	var out []byte
	var translated bool
	var err error
	if c != codecNative {
		out, translated, err = a.TranslateResponse(op, resp.StatusCode(), body, nil)
	}
	if c == codecMessages && err == nil && resp.StatusCode() < 300 {
		src := body
		if translated {
			src = out
		}
		out, err = provider.ChatToMessagesResponse(nil, src, r.clientModel(ctx))
		translated = true
	}
	switch {
	case err != nil:
		h.log.Warn("cannot translate upstream answer", "status", resp.StatusCode(), "err", err)
		status := provider.ClientStatus(a, op, resp.StatusCode())
		if status < 400 {
			status = fasthttp.StatusBadGateway
		}
		writeError(ctx, status, typeUpstream, "upstream_bad_response", "the upstream answer could not be translated")
		return
	case translated:
		ctx.SetContentType("application/json")
		ctx.Response.SetBodyRaw(out)
		return
	}
	ct := resp.Header.ContentType()
	if len(ct) == 0 {
		ct = []byte("application/json")
	}
	ctx.Response.Header.SetContentTypeBytes(ct)
	old := ctx.Response.SwapBody(body)
	resp.SwapBody(old)
}

// retryAfter parses a Retry-After header (seconds or an HTTP date), capped so a
// hostile or broken upstream cannot park a backend for long.
func retryAfter(v []byte, now time.Time) time.Duration {
	const limit = 10 * time.Minute
	if len(v) == 0 {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(string(v)); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := fasthttp.ParseHTTPDate(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), limit)
}

// finishNeutral records an attempt whose outcome says nothing about the backend.
func (h *Handler) finishNeutral(s *backends.State, rs *backends.RouteStats, start time.Time, class backends.Class) {
	s.InFlight.Add(-1)
	h.inFlight.Add(-1)
	rs.Requests[class].Add(1)
	s.Duration.Observe(time.Since(start))
}

func isEventStream(ct []byte) bool {
	return len(ct) >= len("text/event-stream") && strings.EqualFold(string(ct[:len("text/event-stream")]), "text/event-stream")
}

// copyRequestIDs passes the upstream's request id on: OpenAI's X-Request-Id, and
// Anthropic's request-id, which the Anthropic SDKs show in their errors.
func copyRequestIDs(dst *fasthttp.ResponseHeader, src *fasthttp.ResponseHeader) {
	if id := src.Peek("X-Request-Id"); len(id) > 0 {
		dst.SetBytesV("X-Request-Id", id)
	}
	if id := src.Peek("Request-Id"); len(id) > 0 {
		dst.SetBytesV("Request-Id", id)
	}
}
