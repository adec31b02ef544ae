package proxy

import (
	"crypto/subtle"
	"errors"
	"net"

	"github.com/berry-gateway/berry/pkg/jsonscan"
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

// writeError answers with an OpenAI-style error body.
func writeError(ctx *fasthttp.RequestCtx, status int, typ, code, msg string) {
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(appendError(nil, typ, code, msg))
}

// appendError appends {"error":{"message","type","code"}} to dst.
func appendError(dst []byte, typ, code, msg string) []byte {
	dst = append(dst, `{"error":{"message":`...)
	dst = jsonscan.AppendString(dst, msg)
	dst = append(dst, `,"type":`...)
	dst = jsonscan.AppendString(dst, typ)
	dst = append(dst, `,"code":`...)
	if code == "" {
		dst = append(dst, "null"...)
	} else {
		dst = jsonscan.AppendString(dst, code)
	}
	return append(dst, "}}"...)
}

// WriteProtocolError answers a request fasthttp could not parse (too large, malformed
// HTTP, read timeout) with an OpenAI-style error.
func WriteProtocolError(ctx *fasthttp.RequestCtx, err error) {
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

// constantTimeEqual compares secrets without leaking where they differ.
func constantTimeEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
