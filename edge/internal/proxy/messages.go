package proxy

// POST /v1/messages serves the Anthropic Messages API in front of any backend, so the
// Anthropic SDKs and tools work against the gateway. It runs the chat path (the same
// routing, filters, breakers, retries, first-content rule, timeouts and metrics) with
// a codec per attempt: an adapter that speaks the Messages API itself
// (provider.NativeMessages) gets the client's body with only the model rewritten and
// its answer relayed untouched; any other gets the body translated to an OpenAI chat
// request and its answer, already in OpenAI's format after the adapter's own
// translation, translated back. Errors on this endpoint are in Anthropic's shape.

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/edge/internal/routing"
	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/provider"
	"github.com/berry-gateway/berry/pkg/sse"
)

// inbound is the API format a client speaks, which decides the shape of every error
// it is answered with (errors.go).
type inbound uint8

const (
	inOpenAI    inbound = iota // /v1/chat/completions, /v1/completions, /v1/embeddings
	inMessages                 // /v1/messages (Anthropic)
	inResponses                // /v1/responses (OpenAI's Responses API; errors in OpenAI's shape)
)

// inboundOf is the format of a request path: Anthropic's for /v1/messages and below.
func inboundOf(path []byte) inbound {
	switch {
	case bytes.Equal(path, []byte("/v1/messages")) || bytes.HasPrefix(path, []byte("/v1/messages/")):
		return inMessages
	case bytes.Equal(path, []byte("/v1/responses")) || bytes.HasPrefix(path, []byte("/v1/responses/")) ||
		bytes.Equal(path, []byte("/responses")):
		return inResponses
	}
	return inOpenAI
}

// codec is how one attempt's request and answer are converted.
type codec uint8

const (
	codecOpenAI        codec = iota // OpenAI in and out; the adapter translates its upstream
	codecNative                     // Messages API in and out, passed through
	codecMessages                   // Messages API in, OpenAI chat to the adapter, translated back
	codecResponses                  // Responses API in and out, passed through with ids rewritten
	codecResponsesChat              // Responses API in, OpenAI chat to the adapter, translated back
)

func codecFor(in inbound, p *routing.Provider) codec {
	switch in {
	case inMessages:
		if _, ok := p.Adapter.(provider.NativeMessages); ok {
			return codecNative
		}
		return codecMessages
	case inResponses:
		if p.ResponsesNative {
			return codecResponses
		}
		return codecResponsesChat
	}
	return codecOpenAI
}

// upstreamOp is the operation the attempt's adapter performs: a translated Responses
// API request is a chat request to it.
func (a *attempt) upstreamOp() provider.Op {
	if a.codec == codecResponsesChat {
		return provider.OpChat
	}
	return a.r.op
}

// writeRequest fills req for the attempt, in its codec.
func (a *attempt) writeRequest(req *fasthttp.Request) error {
	r, ctx := a.r, a.r.ctx
	ad, acct, model := a.b.Provider.Adapter, &a.b.Provider.Account, r.upstreamModel(a.b)
	switch a.codec {
	case codecNative:
		if err := ad.(provider.NativeMessages).WriteMessagesRequest(req, acct, model, ctx.PostBody(), &r.fields); err != nil {
			return err
		}
		// Beta features the client opted into (Claude Code sends several) must reach
		// Anthropic with the body that uses them.
		if beta := ctx.Request.Header.Peek("Anthropic-Beta"); len(beta) > 0 {
			req.Header.SetBytesV("Anthropic-Beta", beta)
		}
		return nil
	case codecMessages, codecResponsesChat:
		if !r.chatReady {
			// Translated once, on the first attempt that needs it: a request only
			// Anthropic can express (server tools) still reaches native backends.
			translate := provider.MessagesToChatRequest
			if a.codec == codecResponsesChat {
				translate = provider.ResponsesToChatRequest
			}
			var err error
			if r.chat, err = translate(r.chat[:0], ctx.PostBody()); err != nil {
				return err
			}
			if err := jsonscan.Scan(r.chat, &r.chatFields); err != nil {
				return err
			}
			r.chatReady = true
		}
		return ad.WriteRequest(req, acct, provider.OpChat, model, r.chat, &r.chatFields)
	}
	return ad.WriteRequest(req, acct, r.op, model, ctx.PostBody(), &r.fields)
}

// upstreamModel is the model b's upstream is asked for: its configured one, or for
// a wildcard the one the provider-addressed name names.
func (r *request) upstreamModel(b *routing.Backend) string {
	if b.IsWildcard() {
		return r.upstream
	}
	return b.UpstreamModel
}

// classifyMessages classifies an Anthropic stream event for failover: text or tool
// input deltas and the final message_delta are content; message_stop before any of
// them is an empty answer.
func classifyMessages(name, data []byte) eventKind {
	switch string(name) {
	case "error":
		return kindError
	case "content_block_delta", "message_delta":
		return kindContent
	case "message_stop":
		return kindDone
	}
	return kindOther
}

// chainStream runs the adapter's translator (upstream → OpenAI chunks) and then the
// OpenAI → Messages translator, for codecMessages streams. first is nil when the
// upstream already speaks OpenAI's SSE format.
//
// The first-content rule is applied to the OpenAI events in the middle (kind), exactly
// as on the chat path: the Messages translator closes every stream with a
// message_delta, so its output would make an upstream that ended at once ([DONE]
// before any content) look like an answer instead of a failure to fail over from.
type chainStream struct {
	first, second provider.StreamTranslator
	mid, scratch  []byte
	kind          eventKind // of the OpenAI events behind the last Event call
}

func (c *chainStream) Event(name, data, dst []byte) ([]byte, error) {
	if c.first == nil {
		c.kind = classify(name, data)
		return c.second.Event(name, data, dst)
	}
	c.kind = kindOther
	var err error
	if c.mid, err = c.first.Event(name, data, c.mid[:0]); err != nil {
		return dst, err
	}
	return c.feed(dst)
}

func (c *chainStream) End(dst []byte) ([]byte, error) {
	if c.first != nil {
		var err error
		if c.mid, err = c.first.End(c.mid[:0]); err != nil {
			return dst, err
		}
		if dst, err = c.feed(dst); err != nil {
			return dst, err
		}
	}
	return c.second.End(dst)
}

// feed passes the events in c.mid to the second translator.
func (c *chainStream) feed(dst []byte) ([]byte, error) {
	rest := c.mid
	for {
		ev, next, ok := sse.Next(rest)
		if !ok {
			return dst, nil
		}
		rest = rest[next:]
		var name, data []byte
		name, data, c.scratch = sse.Fields(ev, c.scratch)
		c.kind = max(c.kind, classify(name, data))
		var err error
		if dst, err = c.second.Event(name, data, dst); err != nil {
			return dst, err
		}
	}
}
