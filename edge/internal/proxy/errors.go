package proxy

import (
	"errors"
	"net"

	"github.com/berry-gateway/berry/pkg/provider"
	"github.com/valyala/fasthttp"
)

// OpenAI's error "type" values, which SDKs map to exception classes.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuth           = "authentication_error"
	typePermission     = "permission_error"
	typeNotFound       = "not_found_error"
	typeUnavailable    = "service_unavailable"
	typeUpstream       = "upstream_error"
	typeTimeout        = "timeout_error"
	typeRateLimit      = "rate_limit_error"
	typeServer         = "server_error"
)

// writeError answers with an error in the client's format: OpenAI's
// {"error":{"message","type","code"}} (typ and code are OpenAI's), or on /v1/messages
// Anthropic's {"type":"error","error":{"type","message"}}, which the Anthropic SDKs
// parse, with the Anthropic type for status.
func (in inbound) writeError(ctx *fasthttp.RequestCtx, status int, typ, code, msg string) {
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	if in == inMessages {
		ctx.Response.SetBodyRaw(provider.AppendMessagesError(nil, status, msg))
		return
	}
	ctx.Response.SetBodyRaw(provider.AppendOpenAIError(nil, typ, code, msg))
}

// WriteProtocolError answers a request fasthttp could not parse (too large, malformed
// HTTP, read timeout) with an OpenAI-style error.
func WriteProtocolError(ctx *fasthttp.RequestCtx, err error) {
	writeError := inboundOf(ctx.Path()).writeError
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, typeInvalidRequest, "request_too_large",
			"the request body exceeds the gateway's size limit")
	case errors.As(err, &small):
		writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, typeInvalidRequest, "headers_too_large",
			"the request headers are too large")
	case errors.As(err, &netErr) && netErr.Timeout():
		// Usually a connection a client opened and never used; not the client's syntax.
		writeError(ctx, fasthttp.StatusRequestTimeout, typeInvalidRequest, "request_timeout",
			"the request was not received in time")
	default:
		writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "bad_request",
			"malformed HTTP request")
	}
}
