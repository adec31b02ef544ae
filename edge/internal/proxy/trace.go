package proxy

import (
	"context"
	"strconv"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/berry-gateway/berry/edge/internal/accesslog"
	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/provider"
)

// Tracing: a span per client request (kind server) and one per upstream attempt
// (kind client, its child), with the GenAI semantic-convention attributes and
// Berry's own under berry.*. With Options.Tracer nil, none of this runs: the hot path
// pays a nil check.

// W3C trace context, in from clients and out to upstreams.
var propagator = propagation.TraceContext{}

// Berry's span attributes.
const (
	attrRequestID      = attribute.Key("berry.request_id")
	attrKey            = attribute.Key("berry.key")
	attrBackend        = attribute.Key("berry.backend")
	attrAttempt        = attribute.Key("berry.attempt")
	attrOutcome        = attribute.Key("berry.outcome")
	attrFailoverReason = attribute.Key("berry.failover_reason")
	attrAttempts       = attribute.Key("berry.attempts")
	attrStreamEnd      = attribute.Key("berry.stream_end")
)

// traced is a request's or an attempt's span; the zero value traces nothing.
type traced struct {
	ctx  context.Context // carries span, for its children and propagation
	span trace.Span
}

// startRequest opens r's span, continuing the client's trace when it sent a
// traceparent.
func (h *Handler) startRequest(r *request) {
	parent := propagator.Extract(context.Background(), requestCarrier{&r.ctx.Request.Header})
	ctx, sp := h.opts.Tracer.Start(parent, "berry "+string(r.ctx.Path()), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(r.rec.Time),
		trace.WithAttributes(
			semconv.HTTPRequestMethodKey.String(string(r.ctx.Method())),
			semconv.URLPath(string(r.ctx.Path())),
			attrRequestID.String(string(r.id)),
		))
	r.trace = traced{ctx, sp}
}

// routed names r's span for what it asks once the model is known:
// "{gen_ai.operation.name} {gen_ai.request.model}".
func (r *request) routed() {
	sp := r.trace.span
	if sp == nil {
		return
	}
	op := genAIOperation(r.op)
	sp.SetName(op + " " + r.rec.Model)
	sp.SetAttributes(semconv.GenAIOperationNameKey.String(op), semconv.GenAIRequestModel(r.rec.Model),
		attrKey.String(r.rec.Key))
}

func genAIOperation(op provider.Op) string {
	switch op {
	case provider.OpCompletions:
		return semconv.GenAIOperationNameTextCompletion.Value.AsString()
	case provider.OpEmbeddings:
		return semconv.GenAIOperationNameEmbeddings.Value.AsString()
	}
	return semconv.GenAIOperationNameChat.Value.AsString()
}

// startAttempt opens the span of a's upstream call and puts its trace context in the
// upstream request's headers.
func (h *Handler) startAttempt(a *attempt, up *fasthttp.Request) {
	r, b := a.r, a.b
	if r.trace.span == nil {
		return
	}
	op := genAIOperation(r.op)
	model := r.upstreamModel(b)
	ctx, sp := h.opts.Tracer.Start(r.trace.ctx,
		op+" "+model, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(a.start),
		trace.WithAttributes(
			semconv.GenAIOperationNameKey.String(op),
			semconv.GenAIProviderNameKey.String(b.Provider.GenAIName),
			semconv.GenAIRequestModel(model),
			attrBackend.String(b.State.Label),
			attrAttempt.Int(r.rec.NAttempts),
		))
	propagator.Inject(ctx, upstreamCarrier{&up.Header})
	a.trace = traced{ctx, sp}
}

// endAttempt closes an attempt's span with its outcome; a failed one says why the
// request moved on (or gave up).
func (sp span) endAttempt(class backends.Class, ok bool, reason string) {
	t := sp.trace.span
	if t == nil {
		return
	}
	t.SetAttributes(attrOutcome.String(class.String()))
	if !ok {
		t.SetAttributes(attrFailoverReason.String(reason))
		t.SetStatus(codes.Error, reason)
	}
	t.End()
}

// answered records an attempt's upstream status.
func (a *attempt) answered(status int) {
	if a.trace.span != nil {
		a.trace.span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	}
}

// finishTrace closes a request's span (held by its stream, for a stream) with what the
// client got: the status, the backend that served, the usage and the model the
// upstream named, when known.
func finishTrace(t traced, status int, backend string, attempts int, u jsonscan.Usage, model []byte, streamEnd string) {
	sp := t.span
	sp.SetAttributes(semconv.HTTPResponseStatusCode(status), attrAttempts.Int(attempts))
	if backend != "" {
		sp.SetAttributes(attrBackend.String(backend))
	}
	if len(model) > 0 {
		sp.SetAttributes(semconv.GenAIResponseModel(string(model)))
	}
	if u.Input >= 0 {
		sp.SetAttributes(semconv.GenAIUsageInputTokens(int(u.Input)))
	}
	if u.Output >= 0 {
		sp.SetAttributes(semconv.GenAIUsageOutputTokens(int(u.Output)))
	}
	if streamEnd != "" {
		sp.SetAttributes(attrStreamEnd.String(streamEnd))
	}
	if status >= 500 || streamEnd == accesslog.StreamFailed || streamEnd == accesslog.StreamShutdown {
		sp.SetStatus(codes.Error, "HTTP "+strconv.Itoa(status)+" "+streamEnd)
	}
	sp.End()
}

// requestCarrier reads a client's trace headers.
type requestCarrier struct{ h *fasthttp.RequestHeader }

func (c requestCarrier) Get(key string) string { return string(c.h.Peek(key)) }
func (c requestCarrier) Set(key, value string) {}
func (c requestCarrier) Keys() []string        { return nil }

// upstreamCarrier writes trace headers into an upstream request.
type upstreamCarrier struct{ h *fasthttp.RequestHeader }

func (c upstreamCarrier) Get(key string) string { return string(c.h.Peek(key)) }
func (c upstreamCarrier) Set(key, value string) { c.h.Set(key, value) }
func (c upstreamCarrier) Keys() []string        { return nil }
