package proxy

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/berry-gateway/berry/edge/internal/accesslog"
	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/breaker"
	"github.com/berry-gateway/berry/edge/internal/routing"
	"github.com/berry-gateway/berry/pkg/provider"
	"github.com/valyala/fasthttp"
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
	b      *routing.Backend // the backend that failed
	// class is the fallback class of an upstream answer that says the request
	// cannot be served by this model (a context window or content filter refusal);
	// classNone for other failures.
	class int
	// unexpressible: the backend's adapter cannot express the request (its 400 is in
	// the client response); the backend was not called and is not an attempt.
	unexpressible bool
}

func (f failure) timeout() bool {
	return errors.Is(f.err, fasthttp.ErrTimeout) || errors.Is(f.err, os.ErrDeadlineExceeded) ||
		errors.Is(f.err, errFirstByteTimeout)
}

// retryable is the failover policy, for an upstream's HTTP status and for an error a
// stream translator reports alike: rate limited, server errors, and authentication
// failures (the client's key is never sent upstream, so 401/403 there is the provider
// account's fault, not the client's) move on to the next backend.
func retryable(status int) bool {
	return status == fasthttp.StatusTooManyRequests || status >= 500 ||
		status == fasthttp.StatusUnauthorized || status == fasthttp.StatusForbidden
}

// attempt is one try of one backend for a request.
type attempt struct {
	r     *request
	b     *routing.Backend
	codec codec
	span
}

// span is an attempt's hold on its backend from start to finish: it is in the
// backend's in-flight count until end, and its result goes to the breaker with the
// ticket that admitted it.
type span struct {
	b      *routing.Backend
	ticket breaker.Ticket
	start  time.Time
	rec    *accesslog.Record // its last attempt is this one; nil: no record
	trace  traced
}

// forward tries the ordered candidates until one answers, up to the request's budget
// of distinct backends. When none did, it answers with the last failure and returns
// the fallback class that applies (failures all of one refusal class: that class;
// otherwise retries exhausted: classAny); classNone when the request was answered.
func (h *Handler) forward(r *request) int {
	up := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(up)
	budget, tried := r.attempts(), 0
	var last failure
	refused := classNone // the refusal class every failure so far had, if they all had one
	unexpressible := false
	for _, c := range r.cands {
		if tried == budget {
			break
		}
		b := r.backends[c.Index]
		// Claims the half-open trial; another request may have taken it meanwhile.
		tk, ok := b.State.Breaker.Acquire(time.Now())
		if !ok {
			continue
		}
		tried++
		if tried > 1 {
			r.model.Stats.Retries.Add(1)
		}
		a := attempt{r: r, b: b, codec: codecFor(r.in, b.Provider), span: span{b: b, ticket: tk}}
		f, done := h.try(&a, up)
		if done {
			r.rec.Backend = b.State.Label
			r.metered.backend = b
			if tried > 1 {
				r.model.Stats.Failovers.Add(1)
			}
			return classNone
		}
		if f.unexpressible {
			// Another backend (one that speaks the client's API natively) may still
			// express it; it is not a try of this one.
			tried--
			unexpressible = true
			continue
		}
		if tried == 1 || f.class == refused {
			refused = f.class
		} else {
			refused = classNone
		}
		last = f
		last.b = b
	}
	if tried == 0 && unexpressible {
		return classNone // the 400 of the last backend that could not express it stands
	}
	class := classAny
	if tried > 0 && refused != classNone {
		class = refused
	}
	h.answerFailure(r, tried, last)
	return class
}

// answerFailure answers a request no backend served, from its last failure.
func (h *Handler) answerFailure(r *request, tried int, last failure) {
	ctx, name := r.ctx, strconv.Quote(r.model.Name)
	switch last.status {
	case 0:
	case fasthttp.StatusUnauthorized, fasthttp.StatusForbidden:
		// The provider refused the gateway's own credentials for it. Relayed as is,
		// an SDK would report the client's key as wrong, and the provider's message
		// may quote part of the provider key: the client hears which backend failed,
		// the log has the status.
		h.log.Error("upstream refused the gateway's credentials", "request_id", string(r.id), "model", r.model.ID,
			"backend", last.b.Key().String(), "status", last.status)
		r.in.writeError(ctx, fasthttp.StatusBadGateway, typeUpstream, "upstream_auth_failed",
			"backend "+strconv.Quote(last.b.Key().String())+" refused the gateway's credentials for it (HTTP "+
				strconv.Itoa(last.status)+"); the operator must fix the provider's key")
		return
	default:
		return // the last upstream error, already in the response, with its real status
	}
	switch {
	case tried == 0:
		r.in.writeError(ctx, fasthttp.StatusServiceUnavailable, typeUnavailable, "no_backend_available",
			"no backend is available for model "+name+"; retry later")
		ctx.Response.Header.Set("Retry-After", "1")
	case errors.Is(last.err, errNoContent):
		r.in.writeError(ctx, fasthttp.StatusBadGateway, typeUpstream, "upstream_stream_error",
			"every backend for model "+name+" failed before sending content")
	case last.timeout():
		r.in.writeError(ctx, fasthttp.StatusGatewayTimeout, typeTimeout, "upstream_timeout",
			"every backend for model "+name+" timed out")
	default:
		r.in.writeError(ctx, fasthttp.StatusBadGateway, typeUpstream, "upstream_unreachable",
			"no backend for model "+name+" could be reached")
	}
}

// try sends the request to a's backend, reusing up. done means the client's answer is
// set (a success, or an upstream answer that is not worth retrying elsewhere).
func (h *Handler) try(a *attempt, up *fasthttp.Request) (_ failure, done bool) {
	r, p, s := a.r, a.b.Provider, a.b.State
	counted := false // whether this attempt is in the in-flight counts
	defer func() {
		// An adapter bug must not leave a half-open trial claimed (the breaker would
		// never close) or the in-flight count inflated; ServeHTTP answers the panic.
		if x := recover(); x != nil {
			s.Breaker.Release(a.ticket)
			if counted {
				s.InFlight.Add(-1)
			}
			panic(x)
		}
	}()
	up.Reset()
	// An OpenAI-format stream reports its usage only when asked: the edge asks, and
	// takes that chunk out of what the client sees unless the client asked too.
	r.fields.AskUsage = r.stream && a.codec == codecOpenAI && p.AskStreamUsage &&
		(r.op == provider.OpChat || r.op == provider.OpCompletions)
	if err := a.writeRequest(up); err != nil {
		s.Breaker.Release(a.ticket)
		if errors.Is(err, provider.ErrInvalidRequest) {
			// The client asked for something this provider cannot express (n > 1 for
			// Anthropic, hosted tools through translation): the client's 400 unless a
			// backend that can express it serves the request.
			r.in.writeError(r.ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "unsupported_for_provider", err.Error())
			return failure{status: fasthttp.StatusBadRequest, unexpressible: true}, false
		}
		h.log.Warn("cannot build upstream request", "request_id", string(r.id), "model", r.model.ID, "provider", p.ID, "err", err)
		return failure{err: err}, false
	}
	up.SetTimeout(p.Timeout)
	up.Header.SetBytesV("X-Request-Id", r.id)
	resp := fasthttp.AcquireResponse()
	if r.stream {
		up.Header.Set("Accept", "text/event-stream")
		resp.StreamBody = true
	}

	s.InFlight.Add(1)
	counted = true
	a.start = time.Now()
	r.rec.AddAttempt(a.b.State.Label, "")
	a.rec = &r.rec
	if h.opts.Tracer != nil {
		h.startAttempt(a, up)
	}
	lat := sampleFor(r.stream)
	// The half-open trial decides whether the backend rejoins: a pooled connection
	// from before it went down must not decide for it.
	err := h.up.do(up, resp, r.stream, a.ticket.Trial())
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		// The answer is too large to hold, and the request asked for it: another
		// backend would answer the same.
		a.endNeutral(backends.ClassError)
		fasthttp.ReleaseResponse(resp)
		r.in.writeError(r.ctx, fasthttp.StatusBadGateway, typeUpstream, "upstream_response_too_large",
			"the answer of backend "+strconv.Quote(a.b.Key().String())+" exceeds the gateway's limit of "+
				strconv.Itoa(h.opts.MaxResponseBody)+" bytes")
		return failure{}, true
	}
	if err != nil {
		if errors.Is(err, fasthttp.ErrTimeout) {
			a.endTimeout(lat)
		} else {
			a.end(backends.ClassError, false, lat)
		}
		fasthttp.ReleaseResponse(resp)
		h.log.Warn("upstream request failed", "request_id", string(r.id), "model", r.model.ID, "provider", p.ID, "err", err)
		return failure{err: err}, false
	}
	status := resp.StatusCode()
	a.answered(status)
	if retryable(status) {
		if status == fasthttp.StatusTooManyRequests {
			if d := retryAfter(resp.Header.Peek("Retry-After"), a.start); d > 0 {
				s.Hold(a.start.Add(d))
			}
		}
		h.copyBuffered(a, resp) // kept in case every backend fails
		a.end(backends.ClassOf(status), false, lat)
		fasthttp.ReleaseResponse(resp)
		h.log.Warn("upstream answered with an error", "request_id", string(r.id), "model", r.model.ID, "provider", p.ID, "status", status)
		return failure{status: r.ctx.Response.StatusCode()}, false
	}
	if status >= 400 && r.model.HasFallbacks() {
		if class := refusalClass(resp.Body()); class != classNone && r.model.Fallback(class) != nil {
			// The model cannot serve this request (it is too long for its context
			// window, or its content filter refused it) and names a fallback for
			// that: the backend is healthy, and the next backend or the fallback
			// model may serve it.
			h.copyBuffered(a, resp) // kept in case no backend or fallback serves it
			a.end(backends.ClassOf(status), true, lat)
			fasthttp.ReleaseResponse(resp)
			return failure{status: r.ctx.Response.StatusCode(), class: class}, false
		}
	}
	if !r.stream || status != fasthttp.StatusOK || !isEventStream(resp.Header.ContentType()) {
		// Not a stream (an upstream that ignored "stream": true answers JSON): relay it
		// as the buffered answer it is.
		h.copyBuffered(a, resp)
		// A 4xx here is about the request, not the backend: the backend is healthy.
		a.end(backends.ClassOf(status), true, lat)
		fasthttp.ReleaseResponse(resp)
		return failure{}, true
	}
	return h.openStream(a, resp)
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

// end records the attempt's end: in-flight count, outcome counters, breaker and
// latency (a failure is a latency sample too, so a backend that times out ranks last).
// The access-log record, when the attempt has one, gets its outcome.
// A completed stream's length says nothing about the backend's speed, so streams feed
// only the first-token estimate.
func (sp span) end(class backends.Class, ok bool, lat sample) {
	now := time.Now()
	d := now.Sub(sp.start)
	s := sp.b.State
	sp.outcome(class)
	sp.endAttempt(class, ok, class.String())
	s.InFlight.Add(-1)
	sp.b.Stats.Requests[class].Add(1)
	s.Duration.Observe(d)
	switch lat {
	case sampleTotal:
		s.Latency.Observe(d, now)
	case sampleFirstToken:
		s.Latency.ObserveFirstToken(d, now)
	}
	if ok {
		s.Served(now)
		s.Breaker.Success(sp.ticket)
	} else {
		s.Breaker.Failure(sp.ticket, now)
	}
}

// endTimeout records an attempt that ran past its timeout. When the backend answered
// another request in the meantime, it is alive and this request was the long one (a
// large max_tokens, a long prompt): that is not held against the backend, neither by
// its breaker nor by its latency estimate nor by the fleet. Otherwise the backend did
// not answer, and it fails like any attempt without an answer.
func (sp span) endTimeout(lat sample) {
	if !sp.b.State.ServedSince(sp.start) {
		sp.endAttempt(backends.ClassError, false, "timeout")
		sp.trace = traced{} // ended
		sp.end(backends.ClassError, false, lat)
		return
	}
	sp.endNeutral(backends.ClassTooLong)
}

// endNeutral records an attempt whose outcome says nothing about the backend (the
// client went away, or the request outlasted its timeout while the backend served
// others): it gives back a half-open trial instead of judging it.
func (sp span) endNeutral(class backends.Class) {
	s := sp.b.State
	sp.outcome(class)
	sp.endAttempt(class, class != backends.ClassError && class != backends.ClassTooLong, class.String())
	s.Breaker.Release(sp.ticket)
	s.InFlight.Add(-1)
	sp.b.Stats.Requests[class].Add(1)
	s.Duration.Observe(time.Since(sp.start))
}

// outcome records the attempt's class as its access-log outcome.
func (sp span) outcome(class backends.Class) {
	if r := sp.rec; r != nil && r.NAttempts > 0 && r.NAttempts <= accesslog.MaxAttempts {
		r.Attempts[r.NAttempts-1].Outcome = class.String()
	}
}

// copyBuffered moves a buffered upstream answer into the client response: status,
// content type, request id and body, in the client's format (an error on /v1/messages
// in Anthropic's shape). The passthrough case swaps buffers instead of copying the
// body.
func (h *Handler) copyBuffered(a *attempt, resp *fasthttp.Response) {
	r, ad, op := a.r, a.b.Provider.Adapter, a.upstreamOp()
	ctx := r.ctx
	body := resp.Body() // reads a streamed body to its end
	upstream := resp.StatusCode()
	ctx.Response.Reset()
	// Statuses clients do not know (Anthropic's 529) are mapped; failover decisions
	// were made on the upstream's own status.
	status := provider.ClientStatus(ad, op, upstream)
	ctx.SetStatusCode(status)
	copyRequestIDs(&ctx.Response.Header, &resp.Header)
	if upstream == fasthttp.StatusTooManyRequests {
		copyRateLimits(&ctx.Response.Header, &resp.Header)
	}
	var out []byte
	var translated bool
	var err error
	if a.codec != codecNative {
		out, translated, err = ad.TranslateResponse(op, upstream, body, nil)
	}
	if a.codec == codecMessages && err == nil {
		src := body
		if translated {
			src = out
		}
		if upstream < 300 {
			out, err = provider.ChatToMessagesResponse(nil, src, "")
		} else {
			out = provider.OpenAIErrorToMessages(nil, status, src)
		}
		translated = true
	}
	if a.codec == codecResponsesChat && err == nil && upstream < 300 {
		src := body
		if translated {
			src = out
		}
		// Chat errors already have the Responses API's error shape.
		out, err = provider.ChatToResponsesResponse(nil, src, ctx.Request.Body(), string(a.translatedResponseID()))
		translated = true
	}
	switch {
	case err != nil:
		h.log.Warn("cannot translate upstream answer", "request_id", string(r.id), "status", upstream, "err", err)
		if status < 400 {
			status = fasthttp.StatusBadGateway
		}
		r.in.writeError(ctx, status, typeUpstream, "upstream_bad_response", "the upstream answer could not be translated")
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
	if a.codec == codecResponses && upstream < 300 {
		// The client sees the gateway's id for the response (responses.go).
		id := responseID{model: r.model.ID, provider: a.b.Provider.ID, upstream: responseObjectID(body)}
		body = rewriteResponseIDs(body, id.upstream, appendResponseID(nil, id, a.b.Provider))
	}
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

func isEventStream(ct []byte) bool {
	return len(ct) >= len("text/event-stream") && strings.EqualFold(string(ct[:len("text/event-stream")]), "text/event-stream")
}

// copyRateLimits passes a rate-limited upstream's advice on: when to retry, and the
// limits it reports (OpenAI's x-ratelimit-*, Anthropic's anthropic-ratelimit-*).
func copyRateLimits(dst *fasthttp.ResponseHeader, src *fasthttp.ResponseHeader) {
	for k, v := range src.All() {
		if bytes.EqualFold(k, []byte("Retry-After")) || hasPrefixFold(k, "x-ratelimit-") || hasPrefixFold(k, "anthropic-ratelimit-") {
			dst.SetBytesKV(k, v)
		}
	}
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}

// copyRequestIDs passes the upstream's request id on: OpenAI's X-Request-Id as
// X-Upstream-Request-Id (X-Request-Id names the request at the gateway), and
// Anthropic's request-id as is, which the Anthropic SDKs show in their errors.
func copyRequestIDs(dst *fasthttp.ResponseHeader, src *fasthttp.ResponseHeader) {
	if id := src.Peek("X-Request-Id"); len(id) > 0 {
		dst.SetBytesV("X-Upstream-Request-Id", id) // X-Request-Id is the gateway's
	}
	if id := src.Peek("Request-Id"); len(id) > 0 {
		dst.SetBytesV("Request-Id", id)
	}
}
