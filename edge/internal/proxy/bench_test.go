package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/edge/internal/accesslog"
	"github.com/berry-gateway/berry/edge/internal/routing"
	"github.com/berry-gateway/berry/pkg/provider"
)

const (
	benchChat = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"up-a","choices":[{"index":0,"message":{"role":"assistant","content":"Load balancers hum; quiet servers share the load; packets find their way."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":17,"total_tokens":29}}`
	benchSSE  = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" +
		"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Load balancers hum\"}}]}\n\n" +
		"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" quietly.\"}}]}\n\n" +
		"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: [DONE]\n\n"
	benchBody         = `{"model":"m","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about load balancers."}],"temperature":0.7}`
	benchAnthropic    = `{"id":"msg_1","type":"message","role":"assistant","model":"up-a","content":[{"type":"text","text":"Load balancers hum; quiet servers share the load; packets find their way."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":17}}`
	benchAnthropicSSE = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"up-a\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Load balancers hum\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" quietly.\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":17}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	benchMessages       = `{"model":"m","max_tokens":256,"system":"You are a helpful assistant.","messages":[{"role":"user","content":"Write a haiku about load balancers."}],"temperature":0.7}`
	benchMessagesStream = `{"model":"m","max_tokens":256,"stream":true,"system":"You are a helpful assistant.","messages":[{"role":"user","content":"Write a haiku about load balancers."}],"temperature":0.7}`
	benchStream         = `{"model":"m","stream":true,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about load balancers."}],"temperature":0.7}`
)

// staticUpstream is a loopback fasthttp server answering fixed bodies, so that the
// allocations a benchmark reports (the whole process's) are the edge's own.
func staticUpstream(tb testing.TB) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	chat, sse := []byte(benchChat), []byte(benchSSE)
	anMsg, anSSE := []byte(benchAnthropic), []byte(benchAnthropicSSE)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		stream := string(ctx.Request.Header.Peek("Accept")) == "text/event-stream"
		anthropic := bytes.HasSuffix(ctx.Path(), []byte("/messages"))
		switch {
		case stream:
			ctx.SetContentType("text/event-stream")
			ctx.Response.SetBodyRaw(sse)
			if anthropic {
				ctx.Response.SetBodyRaw(anSSE)
			}
		case anthropic:
			ctx.SetContentType("application/json")
			ctx.Response.SetBodyRaw(anMsg)
		default:
			ctx.SetContentType("application/json")
			ctx.Response.SetBodyRaw(chat)
		}
	}}
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + lis.Addr().String() + "/v1"
}

// BenchmarkPassthrough compares, in one run, a direct fasthttp call to the upstream
// with the same call through the edge's handler (auth, parse, select, rewrite, forward,
// copy back), buffered and streamed. The difference is the edge's cost per request.
func BenchmarkPassthrough(b *testing.B) {
	up := staticUpstream(b)
	h := newHandler(runtimeFor(b, configTOML("weighted_random", "max_retries = 2",
		backendSpec{id: "a", url: up}, backendSpec{id: "b", url: up})), Options{})
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}

	native := newHandler(runtimeFor(b, configTOML("weighted_random", "max_retries = 2",
		backendSpec{id: "a", url: up, extra: `backend_type = "anthropic"`})), Options{})
	// Every request logged to a file, as --access-log PATH does.
	al, err := accesslog.Open(filepath.Join(b.TempDir(), "access.log"), "bench", accesslog.JSON, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if n := al.Dropped(); n > 0 {
			b.Logf("the access log dropped %d lines", n)
		}
		_ = al.Close()
	}()
	logged := newHandler(runtimeFor(b, configTOML("weighted_random", "max_retries = 2",
		backendSpec{id: "a", url: up}, backendSpec{id: "b", url: up})), Options{AccessLog: al})
	for _, tc := range []struct {
		name   string
		path   string
		body   string
		stream bool
		h      *Handler
	}{
		{"buffered", "/v1/chat/completions", benchBody, false, h},
		{"stream", "/v1/chat/completions", benchStream, true, h},
		{"buffered-accesslog", "/v1/chat/completions", benchBody, false, logged},
		{"stream-accesslog", "/v1/chat/completions", benchStream, true, logged},
		// /v1/messages to the same OpenAI upstream: translation both ways.
		{"messages-buffered", "/v1/messages", benchMessages, false, h},
		{"messages-stream", "/v1/messages", benchMessagesStream, true, h},
		// /v1/messages to an Anthropic backend: native passthrough.
		{"messages-native-buffered", "/v1/messages", benchMessages, false, native},
		{"messages-native-stream", "/v1/messages", benchMessagesStream, true, native},
	} {
		b.Run(tc.name+"/direct", func(b *testing.B) {
			if tc.path != "/v1/chat/completions" || tc.h == logged {
				b.Skip("the same as buffered/direct and stream/direct")
			}
			client := newClient(time.Second, tc.stream, 0)
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			bw := bufio.NewWriter(io.Discard)
			b.ReportAllocs()
			for b.Loop() {
				req.Reset()
				req.SetRequestURI(up + "/chat/completions")
				req.Header.SetMethod("POST")
				req.Header.Set("Authorization", "Bearer k-a")
				if tc.stream {
					req.Header.Set("Accept", "text/event-stream")
				}
				req.SetBodyString(tc.body)
				resp.Reset()
				resp.StreamBody = tc.stream
				if err := client.Do(req, resp); err != nil {
					b.Fatal(err)
				}
				if err := resp.Write(bw); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/edge", func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			var req fasthttp.Request
			req.SetRequestURI(tc.path)
			req.Header.SetMethod("POST")
			req.Header.Set("Authorization", "Bearer t")
			req.SetBodyString(tc.body)
			initCtx(&ctx, &req, remote)
			bw := bufio.NewWriter(io.Discard)
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				tc.h.ServeHTTP(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
				if err := ctx.Response.Write(bw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRoute is the per-request work before any upstream I/O: authenticate,
// scan the body, find the model, filter and order its backends.
func BenchmarkRoute(b *testing.B) {
	rt := runtimeFor(b, configTOML("weighted_random", "", backendSpec{id: "a", url: "http://127.0.0.1:1/v1"},
		backendSpec{id: "b", url: "http://127.0.0.1:1/v1"}, backendSpec{id: "c", url: "http://127.0.0.1:1/v1"}))
	ctx := chatRequest(benchBody)
	b.ReportAllocs()
	b.SetBytes(int64(len(ctx.PostBody())))
	for b.Loop() {
		route(b, ctx, rt.Table())
	}
}

// chatRequest is a POST /v1/chat/completions with user "u"'s key and body.
func chatRequest(body string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.SetRequestURI("/v1/chat/completions")
	req.Header.SetMethod("POST")
	req.Header.Set("Authorization", "Bearer t")
	req.SetBodyString(body)
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}, nil)
	return &ctx
}

// route runs the steps of serveOp up to the upstream call, as serveOp does.
func route(tb testing.TB, ctx *fasthttp.RequestCtx, tab *routing.Table) {
	r := requestPool.Get().(*request)
	r.ctx, r.table, r.op, r.in, r.now = ctx, tab, provider.OpChat, inOpenAI, time.Now()
	if r.user = authenticate(ctx, tab, r.now, inOpenAI); r.user == nil || !r.route() || !r.candidates() {
		tb.Fatalf("not routed: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	r.model.Strategy.Order(r.cands)
	r.reset()
	requestPool.Put(r)
}

// initCtx prepares ctx to serve req as if it came from remote over a connection, as
// fasthttp's server does: the stream relay sets write deadlines on the connection,
// which RequestCtx.Init's stand-in cannot take.
func initCtx(ctx *fasthttp.RequestCtx, req *fasthttp.Request, remote net.Addr) {
	ctx.Init2(nopConn{remote: remote}, nil, false)
	req.CopyTo(&ctx.Request)
}

// nopConn is a connection that accepts every write and deadline.
type nopConn struct{ remote net.Addr }

func (nopConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (nopConn) Write(b []byte) (int, error)      { return len(b), nil }
func (nopConn) Close() error                     { return nil }
func (nopConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3000} }
func (c nopConn) RemoteAddr() net.Addr           { return c.remote }
func (nopConn) SetDeadline(time.Time) error      { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }
