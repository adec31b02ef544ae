package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

// ErrInvalidRequest marks a client request an adapter cannot translate for its provider
// (for example n > 1 for Anthropic, or a tool call whose arguments are not a JSON
// object). It is the client's fault, so a proxy should answer 400 instead of failing
// over: check it with errors.Is.
var ErrInvalidRequest = errors.New("invalid request")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidRequest}, args...)...)
}

// ErrTruncated is an upstream stream whose body ended before the event that ends it
// (Anthropic's message_stop, OpenAI's [DONE]): the answer may be cut short.
var ErrTruncated = &Error{Status: http.StatusBadGateway, Type: "upstream_error", Code: "upstream_stream_truncated",
	Message: "the upstream stream ended before its last event"}

// Error is a failure reported by an upstream, already classified in OpenAI's terms. A
// StreamTranslator returns it when the upstream sends an error event mid-stream.
type Error struct {
	// Status is the HTTP status a client should see for it.
	Status int
	// Type is the OpenAI error type (invalid_request_error, server_error, …).
	Type string
	// Code is the provider's own error code or type (overloaded_error, content_filter, …).
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("upstream error %d %s: %s", e.Status, e.Code, e.Message)
}

// AppendJSON appends the error in OpenAI's shape (AppendOpenAIError).
func (e *Error) AppendJSON(dst []byte) []byte {
	return AppendOpenAIError(dst, e.Type, e.Code, e.Message)
}

// AppendOpenAIError appends an error in OpenAI's shape,
// {"error":{"message","type","code"}}, which the OpenAI SDKs map to exception classes
// by type; an empty code is null. It is written by hand because the gateway answers
// its own errors with it on the request path.
func AppendOpenAIError(dst []byte, typ, code, msg string) []byte {
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

// AppendResponsesError appends the data of a Responses API stream's "error" event,
// {"type":"error","code","message","param":null,"sequence_number":0}: the event that
// ends a stream the gateway cannot finish. The sequence number is not the stream's;
// clients read the type, code and message.
func AppendResponsesError(dst []byte, code, msg string) []byte {
	dst = append(dst, `{"type":"error","code":`...)
	if code == "" {
		dst = append(dst, "null"...)
	} else {
		dst = jsonscan.AppendString(dst, code)
	}
	dst = append(dst, `,"message":`...)
	dst = jsonscan.AppendString(dst, msg)
	return append(dst, `,"param":null,"sequence_number":0}`...)
}

// AppendSSE appends the error as one OpenAI-style SSE data event.
func (e *Error) AppendSSE(dst []byte) []byte {
	dst = append(dst, "data: "...)
	return append(e.AppendJSON(dst), "\n\n"...)
}

// AppendMessagesJSON appends the error in the Anthropic Messages API shape,
// {"type":"error","error":{"type","message"}}, for the edge's /v1/messages endpoint.
func (e *Error) AppendMessagesJSON(dst []byte) []byte {
	return appendJSON(dst, anErrorEnvelope{Type: "error", Error: anErrorBody{Type: MessagesErrorType(e.Status), Message: e.Message}})
}

// OpenAIErrorType is the OpenAI error type for an HTTP status, for errors whose
// upstream did not name one.
func OpenAIErrorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// MessagesErrorType is the Anthropic error type for an HTTP status, as the Messages API
// documents them.
func MessagesErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	case http.StatusServiceUnavailable, StatusOverloaded:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// StatusOverloaded is Anthropic's non-standard "overloaded" status.
const StatusOverloaded = 529

// appendJSON appends v's JSON encoding to dst, reusing dst's capacity. HTML characters
// are not escaped: these bodies go to API clients, not browsers.
func appendJSON(dst []byte, v any) []byte {
	w := appendWriter{dst}
	enc := json.NewEncoder(&w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own wire types reach here, and they always encode.
		panic("provider: encoding " + fmt.Sprintf("%T", v) + ": " + err.Error())
	}
	return w.b[:len(w.b)-1] // Encode ends with a newline
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
