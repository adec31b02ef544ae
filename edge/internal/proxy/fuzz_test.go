package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/pkg/sse"
)

// FuzzRequestBody sends arbitrary bodies through the whole handler against a loopback
// upstream: it must never panic, and every answer is either the upstream's success or
// an OpenAI-style error with a 4xx status.
func FuzzRequestBody(f *testing.F) {
	for _, s := range []string{benchBody, benchStream, `{"model":"m","backend":"a"}`, `{"backend":"b","model":"m","stream":false}`,
		`{"model":"m\u0000"}`, `{"model":"nope"}`, `{"model":1}`, `{"stream":"x","model":"m"}`, `{}`, `[]`, `{"model":"m",`, ``} {
		f.Add([]byte(s))
	}
	up := staticUpstream(f)
	h := newHandler(runtimeFor(f, configTOML("weighted_random", "max_request_body_bytes = 4096",
		backendSpec{id: "a", url: up}, backendSpec{id: "b", url: up})), Options{})
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req fasthttp.Request
		req.SetRequestURI("/v1/chat/completions")
		req.Header.SetMethod("POST")
		req.Header.Set("Authorization", "Bearer t")
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		initCtx(&ctx, &req, remote)
		h.ServeHTTP(&ctx)
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		if err := ctx.Response.Write(bw); err != nil {
			t.Fatal(err)
		}
		_ = bw.Flush()
		status := ctx.Response.StatusCode()
		switch {
		case status == 200:
		case status >= 400 && status < 500:
			var e struct {
				Error struct{ Message, Type string } `json:"error"`
			}
			var resp fasthttp.Response
			if err := resp.Read(bufio.NewReader(&out)); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(resp.Body(), &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("body %q: status %d with a non-OpenAI error %q", body, status, resp.Body())
			}
		default:
			t.Fatalf("body %q: status %d", body, status)
		}
	})
}

// FuzzSSEClassify feeds arbitrary upstream stream bytes through the event splitter and
// classifier, which run on untrusted upstream output before the first byte.
func FuzzSSEClassify(f *testing.F) {
	for _, s := range []string{benchSSE, "data: {\"error\":{\"message\":\"x\"}}\n\n", "event: error\ndata: {}\r\n\r\n",
		"data: {\"choices\":[{\"delta\":{\"content\":\"\"}}]}\n\ndata: [DONE]\n\n", "data: {\"a\":\"content\"}\n\n",
		"data: {\"tool_calls\":[\n\n", "data: a\ndata: b\n\n", ": keep-alive\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var scratch []byte
		for len(b) > 0 {
			ev, next, ok := sse.Next(b)
			if !ok {
				break
			}
			if next <= 0 || next > len(b) {
				t.Fatalf("nextEvent advanced %d of %d", next, len(b))
			}
			b = b[next:]
			var name, data []byte
			name, data, scratch = sse.Fields(ev, scratch)
			_ = classify(name, data)
		}
		_, _ = io.Discard.Write(b)
	})
}

// FuzzMessagesBody sends arbitrary bodies to POST /v1/messages, translated for an
// OpenAI upstream: never a panic, and every answer is a success or an Anthropic-style
// error with a 4xx status.
func FuzzMessagesBody(f *testing.F) {
	for _, s := range []string{benchMessages, benchMessagesStream, `{"model":"m","max_tokens":1,"messages":[]}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"x","content":"y"}]}]}`,
		`{"model":"m","max_tokens":5,"tools":[{"type":"web_search_20250305","name":"w"}],"messages":[{"role":"user","content":"q"}]}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"robot","content":"q"}]}`, `{"model":"nope"}`, `{}`, `[]`, ``} {
		f.Add([]byte(s))
	}
	up := staticUpstream(f)
	h := newHandler(runtimeFor(f, configTOML("weighted_random", "max_request_body_bytes = 4096",
		backendSpec{id: "a", url: up})), Options{})
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req fasthttp.Request
		req.SetRequestURI("/v1/messages")
		req.Header.SetMethod("POST")
		req.Header.Set("X-Api-Key", "t")
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		initCtx(&ctx, &req, remote)
		h.ServeHTTP(&ctx)
		// Writing the response runs a stream's relay to its end (and releases it).
		if err := ctx.Response.Write(bufio.NewWriter(io.Discard)); err != nil {
			t.Fatal(err)
		}
		status := ctx.Response.StatusCode()
		switch {
		case status == 200:
		case status >= 400 && status < 500:
			var e struct {
				Type  string
				Error struct{ Message, Type string } `json:"error"`
			}
			if err := json.Unmarshal(ctx.Response.Body(), &e); err != nil || e.Type != "error" || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("body %q: status %d with a non-Anthropic error %q", body, status, ctx.Response.Body())
			}
		default:
			t.Fatalf("body %q: status %d: %s", body, status, ctx.Response.Body())
		}
	})
}
