package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/sse"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

func prepared(t testing.TB, kind, base, version string) (Adapter, *Account) {
	t.Helper()
	ad, err := Lookup(kind)
	if err != nil {
		t.Fatal(err)
	}
	if version == "" {
		version = DefaultAPIVersion(kind) // as config import fills it in
	}
	a := &Account{ID: "p", Kind: kind, BaseURL: base, APIKey: "secret-key", APIVersion: version,
		Headers: [][2]string{{"X-Extra", "v"}}}
	if err := ad.Prepare(a); err != nil {
		t.Fatalf("Prepare(%s, %q): %v", kind, base, err)
	}
	return ad, a
}

func TestPrepareURLs(t *testing.T) {
	tests := []struct {
		kind, base, version string
		model               string
		op                  Op
		want                string
	}{
		{"azure", "https://res.openai.azure.com", "", "gpt4o-prod", OpChat,
			"https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"},
		{"azure", "https://res.openai.azure.com/", "2025-01-01-preview", "emb", OpEmbeddings,
			"https://res.openai.azure.com/openai/deployments/emb/embeddings?api-version=2025-01-01-preview"},
		{"azure", "https://res.openai.azure.com/openai/", "", "d", OpCompletions,
			"https://res.openai.azure.com/openai/deployments/d/completions?api-version=2024-10-21"},
		{"azure", "https://res.openai.azure.com", "", "a b/../c", OpChat,
			"https://res.openai.azure.com/openai/deployments/a%20b%2F..%2Fc/chat/completions?api-version=2024-10-21"},
		{"azure", "https://res.openai.azure.com", "", "..", OpChat,
			"https://res.openai.azure.com/openai/deployments/%2E%2E/chat/completions?api-version=2024-10-21"},
		{"azure", "https://res.openai.azure.com", "", "d", OpModels,
			"https://res.openai.azure.com/openai/deployments?api-version=2022-12-01"},
		{"azure", "https://res.openai.azure.com/openai/v1/", "", "gpt-4o", OpChat,
			"https://res.openai.azure.com/openai/v1/chat/completions"},
		{"anthropic", "https://api.anthropic.com", "", "claude", OpChat, "https://api.anthropic.com/v1/messages"},
		{"claude", "https://api.anthropic.com/v1/", "", "claude", OpChat, "https://api.anthropic.com/v1/messages"},
		{"claude", "https://proxy.example/anthropic/v1/messages", "", "claude", OpChat, "https://proxy.example/anthropic/v1/messages"},
		{"anthropic", "https://api.anthropic.com/v1", "", "", OpModels, "https://api.anthropic.com/v1/models?limit=1000"},
		{"gemini", "https://generativelanguage.googleapis.com/v1beta/openai", "", "gemini-2.0-flash", OpChat,
			"https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"},
	}
	for _, tt := range tests {
		ad, a := prepared(t, tt.kind, tt.base, tt.version)
		req := fasthttp.AcquireRequest()
		var f jsonscan.Fields
		body := []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
		if err := jsonscan.Scan(body, &f); err != nil {
			t.Fatal(err)
		}
		if err := ad.WriteRequest(req, a, tt.op, tt.model, body, &f); err != nil {
			t.Errorf("%s %s: %v", tt.kind, tt.base, err)
		} else if got := req.URI().String(); got != tt.want {
			t.Errorf("%s %q model %q op %s: URL %q, want %q", tt.kind, tt.base, tt.model, tt.op, got, tt.want)
		}
		fasthttp.ReleaseRequest(req)
	}
	for _, kind := range []string{"azure", "anthropic", "claude"} {
		ad, _ := Lookup(kind)
		if err := ad.Prepare(&Account{BaseURL: "not a url"}); err == nil {
			t.Errorf("%s accepted a base_url that is not a URL", kind)
		}
	}
}

func TestWriteRequestHeaders(t *testing.T) {
	body := []byte(`{"model":"client-name","backend":"p","messages":[{"role":"user","content":"hi"}]}`)
	tests := []struct {
		kind       string
		wantHeader map[string]string
		noHeader   []string
	}{
		{"azure", map[string]string{"api-key": "secret-key", "X-Extra": "v"}, []string{"Authorization", "x-api-key"}},
		{"anthropic", map[string]string{"x-api-key": "secret-key", "anthropic-version": AnthropicVersion, "X-Extra": "v"},
			[]string{"Authorization", "api-key"}},
		{"openai", map[string]string{"Authorization": "Bearer secret-key", "X-Extra": "v"}, []string{"api-key", "x-api-key"}},
	}
	for _, tt := range tests {
		ad, a := prepared(t, tt.kind, "https://h.example", "")
		var f jsonscan.Fields
		if err := jsonscan.Scan(body, &f); err != nil {
			t.Fatal(err)
		}
		req := fasthttp.AcquireRequest()
		if err := ad.WriteRequest(req, a, OpChat, "up-model", body, &f); err != nil {
			t.Fatal(err)
		}
		for k, v := range tt.wantHeader {
			if got := string(req.Header.Peek(k)); got != v {
				t.Errorf("%s: header %s = %q, want %q", tt.kind, k, got, v)
			}
		}
		for _, k := range tt.noHeader {
			if req.Header.Peek(k) != nil {
				t.Errorf("%s: unexpected header %s", tt.kind, k)
			}
		}
		var sent struct {
			Model   string  `json:"model"`
			Backend *string `json:"backend"`
		}
		if err := json.Unmarshal(req.Body(), &sent); err != nil || sent.Model != "up-model" || sent.Backend != nil {
			t.Errorf("%s: body %s: model must be rewritten and backend dropped (%v)", tt.kind, req.Body(), err)
		}
		fasthttp.ReleaseRequest(req)
	}
}

func TestAnthropicSupportsAndInvalid(t *testing.T) {
	ad, a := prepared(t, "anthropic", "https://api.anthropic.com", "")
	for op, want := range map[Op]bool{OpChat: true, OpModels: true, OpEmbeddings: false, OpCompletions: false} {
		if ad.Supports(op) != want {
			t.Errorf("Supports(%s) = %v", op, !want)
		}
	}
	bad := []string{
		`{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","messages":[]}`,
		`{"model":"m","messages":[{"role":"wizard","content":"x"}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio"}]}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]}`,
		`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"[1]"}}]}]}`,
		`{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","tool_choice":"sometimes","messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","messages":"hi"}`,
	}
	for _, b := range bad {
		req := fasthttp.AcquireRequest()
		var f jsonscan.Fields
		_ = jsonscan.Scan([]byte(b), &f)
		err := ad.WriteRequest(req, a, OpChat, "claude", []byte(b), &f)
		if !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: error %v, want ErrInvalidRequest", b, err)
		}
		fasthttp.ReleaseRequest(req)
	}
	if got := ClientStatus(ad, OpChat, 529); got != 503 {
		t.Errorf("ClientStatus(529) = %d, want 503", got)
	}
	oa, _ := Lookup("openai")
	if got := ClientStatus(oa, OpChat, 529); got != 529 {
		t.Errorf("openai ClientStatus(529) = %d", got)
	}
}

// TestAdaptersAgainstSimulators sends each adapter's requests over loopback to the
// simulator speaking that provider's dialect and reads the answers back through the
// adapter, as the proxy does.
func TestAdaptersAgainstSimulators(t *testing.T) {
	sim := upstreamsim.New(upstreamsim.Options{Name: "up", APIKey: "secret-key", Chunks: 3, Models: []string{"dep-1", "claude-x"}})
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	client := &fasthttp.Client{}
	tools := `,"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]`
	tests := []struct {
		name, kind, model, body string
		status                  int
		header                  [2]string
		check                   func(t *testing.T, content string, calls []oaToolCall, finish string, raw []byte)
	}{
		{name: "azure chat", kind: "azure", model: "dep-1", body: `{"model":"x","messages":[{"role":"user","content":"hi"}]}`, status: 200,
			check: func(t *testing.T, content string, _ []oaToolCall, finish string, raw []byte) {
				if content != upstreamsim.Reply("up", "dep-1") || finish != "stop" {
					t.Errorf("content %q finish %q", content, finish)
				}
			}},
		{name: "azure unknown deployment", kind: "azure", model: "nope", body: `{"model":"x","messages":[{"role":"user","content":"hi"}]}`, status: 404,
			check: func(t *testing.T, _ string, _ []oaToolCall, _ string, raw []byte) {
				if !bytes.Contains(raw, []byte(`"type":"not_found_error"`)) || !bytes.Contains(raw, []byte(`"code":"DeploymentNotFound"`)) {
					t.Errorf("error body %s", raw)
				}
			}},
		{name: "azure content filter", kind: "azure", model: "dep-1", body: `{"model":"x","messages":[{"role":"user","content":"hi"}]}`, status: 400,
			header: [2]string{"X-Sim-Content-Filter", "prompt"},
			check: func(t *testing.T, _ string, _ []oaToolCall, _ string, raw []byte) {
				if !bytes.Contains(raw, []byte(`"code":"content_filter"`)) || !bytes.Contains(raw, []byte(`"content_filter_result"`)) {
					t.Errorf("error body %s", raw)
				}
			}},
		{name: "anthropic chat", kind: "anthropic", model: "claude-x", body: `{"model":"x","messages":[{"role":"system","content":"be nice"},{"role":"user","content":"hi"}]}`, status: 200,
			check: func(t *testing.T, content string, _ []oaToolCall, finish string, _ []byte) {
				if content != upstreamsim.Reply("up", "claude-x") || finish != "stop" {
					t.Errorf("content %q finish %q", content, finish)
				}
			}},
		{name: "anthropic tool call", kind: "claude", model: "claude-x", body: `{"model":"x","messages":[{"role":"user","content":"weather?"}]` + tools + `}`, status: 200,
			check: func(t *testing.T, _ string, calls []oaToolCall, finish string, _ []byte) {
				if len(calls) != 1 || calls[0].Function.Name != "get_weather" || calls[0].Function.Arguments != `{"city":"sim"}` || finish != "tool_calls" {
					t.Errorf("calls %+v finish %q", calls, finish)
				}
			}},
		{name: "anthropic tool result", kind: "claude", model: "claude-x", status: 200,
			body: `{"model":"x","messages":[{"role":"user","content":"weather?"},{"role":"assistant","tool_calls":[{"id":"t1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"sim\"}"}}]},{"role":"tool","tool_call_id":"t1","content":"sunny"}]` + tools + `}`,
			check: func(t *testing.T, content string, _ []oaToolCall, _ string, _ []byte) {
				if !strings.HasSuffix(content, "tool result: sunny") {
					t.Errorf("content %q", content)
				}
			}},
		{name: "anthropic overloaded", kind: "anthropic", model: "claude-x", body: `{"model":"x","messages":[{"role":"user","content":"hi"}]}`, status: 529,
			header: [2]string{"X-Sim-Fail-Status", "529"},
			check: func(t *testing.T, _ string, _ []oaToolCall, _ string, raw []byte) {
				if !bytes.Contains(raw, []byte(`"code":"overloaded_error"`)) || !bytes.Contains(raw, []byte(`"type":"server_error"`)) {
					t.Errorf("error body %s", raw)
				}
			}},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			name := tt.name
			if stream {
				name += " stream"
			}
			t.Run(name, func(t *testing.T) {
				ad, a := prepared(t, tt.kind, "http://"+sim.Addr(), "")
				a.Headers = nil
				body := []byte(tt.body)
				if stream {
					body = []byte(strings.Replace(tt.body, `{"model":"x",`, `{"model":"x","stream":true,`, 1))
				}
				var f jsonscan.Fields
				if err := jsonscan.Scan(body, &f); err != nil {
					t.Fatal(err)
				}
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				if err := ad.WriteRequest(req, a, OpChat, tt.model, body, &f); err != nil {
					t.Fatal(err)
				}
				if tt.header[0] != "" {
					req.Header.Set(tt.header[0], tt.header[1])
				}
				if err := client.Do(req, resp); err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode() != tt.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode(), tt.status, resp.Body())
				}
				var out []byte
				if stream && tt.status == 200 {
					tr := ad.NewStream(OpChat, tt.model)
					if tr == nil {
						out = resp.Body() // already OpenAI SSE
					} else {
						out = runStream(t, tr, resp.Body(), (*Error).AppendSSE)
					}
					content, calls, finish := assembleChatStream(t, out)
					tt.check(t, content, calls, finish, out)
					return
				}
				out, translated, err := ad.TranslateResponse(OpChat, resp.StatusCode(), resp.Body(), nil)
				if err != nil {
					t.Fatal(err)
				}
				if !translated {
					out = resp.Body()
				}
				var c oaReply
				if err := json.Unmarshal(out, &c); err != nil {
					t.Fatalf("not JSON: %s", out)
				}
				content, finish := "", ""
				var calls []oaToolCall
				if len(c.Choices) > 0 {
					content = rawText(c.Choices[0].Message.Content)
					calls = c.Choices[0].Message.ToolCalls
					if c.Choices[0].FinishReason != nil {
						finish = *c.Choices[0].FinishReason
					}
				}
				tt.check(t, content, calls, finish, out)
			})
		}
	}
}

// assembleChatStream reads an OpenAI SSE stream and joins its deltas, checking that it
// is well formed: data events only, JSON payloads, ending with [DONE].
func assembleChatStream(t *testing.T, stream []byte) (content string, calls []oaToolCall, finish string) {
	t.Helper()
	r := sse.NewReader(bytes.NewReader(stream), 0)
	done := false
	for {
		_, data, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if done {
			t.Errorf("event after [DONE]: %s", data)
		}
		if string(data) == "[DONE]" {
			done = true
			continue
		}
		var c oaReply
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("chunk is not JSON: %s", data)
		}
		for _, ch := range c.Choices {
			content += rawText(ch.Delta.Content)
			for _, tc := range ch.Delta.ToolCalls {
				i := 0
				if tc.Index != nil {
					i = *tc.Index
				}
				for len(calls) <= i {
					calls = append(calls, oaToolCall{})
				}
				if tc.ID != "" {
					calls[i].ID = tc.ID
				}
				calls[i].Function.Name += tc.Function.Name
				calls[i].Function.Arguments += tc.Function.Arguments
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	if !done {
		t.Errorf("stream did not end with [DONE]:\n%s", stream)
	}
	return content, calls, finish
}
