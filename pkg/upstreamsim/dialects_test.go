package upstreamsim_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// sseEvents reads an SSE body into (event name, data) pairs.
func sseEvents(t *testing.T, r io.Reader) (names, datas []string) {
	t.Helper()
	sc := bufio.NewScanner(r)
	name := ""
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			name = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			names, datas = append(names, name), append(datas, v)
			name = ""
		}
	}
	return names, datas
}

func TestAzureDialect(t *testing.T) {
	s := start(t, upstreamsim.Options{Name: "az", APIKey: "k", Models: []string{"dep"}, Chunks: 2})
	base := s.AzureURL() + "/openai/deployments/"
	chat := `{"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name, method, url, body string
		header                  map[string]string
		status                  int
		want                    []string // substrings of the body
	}{
		{"chat", "POST", base + "dep/chat/completions?api-version=2024-10-21", chat, map[string]string{"api-key": "k"}, 200,
			[]string{`"model":"dep"`, `"content":"hello from az: dep"`, `"content_filter_results"`, `"prompt_filter_results"`}},
		{"bearer is not Azure auth", "POST", base + "dep/chat/completions?api-version=2024-10-21", chat, map[string]string{"Authorization": "Bearer k"}, 401,
			[]string{`"code":"401"`}},
		{"no api-version", "POST", base + "dep/chat/completions", chat, map[string]string{"api-key": "k"}, 404,
			[]string{`"Resource not found"`}},
		{"unknown deployment", "POST", base + "nope/chat/completions?api-version=1", chat, map[string]string{"api-key": "k"}, 404,
			[]string{`"code":"DeploymentNotFound"`}},
		{"prompt filtered", "POST", base + "dep/chat/completions?api-version=1", chat, map[string]string{"api-key": "k", "X-Sim-Content-Filter": "prompt"}, 400,
			[]string{`"code":"content_filter"`, `"ResponsibleAIPolicyViolation"`, `"param":"prompt"`}},
		{"completion filtered", "POST", base + "dep/chat/completions?api-version=1", chat, map[string]string{"api-key": "k", "X-Sim-Content-Filter": "completion"}, 200,
			[]string{`"finish_reason":"content_filter"`, `"filtered":true`}},
		{"embeddings", "POST", base + "dep/embeddings?api-version=1", `{"input":"x"}`, map[string]string{"api-key": "k"}, 200,
			[]string{`"object":"list"`, `"model":"dep"`}},
		{"deployments", "GET", s.AzureURL() + "/openai/deployments?api-version=2022-12-01", "", map[string]string{"api-key": "k"}, 200,
			[]string{`"id":"dep"`, `"object":"deployment"`}},
		{"injected 429", "POST", base + "dep/chat/completions?api-version=1", chat, map[string]string{"api-key": "k", "X-Sim-Fail-Status": "429"}, 429,
			[]string{`"code":"429"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, tt.method, tt.url, tt.body, tt.header)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("body lacks %s: %s", w, b)
				}
			}
		})
	}
	if got := s.Stats().LastURI; got != "/openai/deployments/dep/chat/completions?api-version=1" {
		t.Errorf("LastURI = %q", got)
	}

	resp := do(t, "POST", base+"dep/chat/completions?api-version=1", `{"stream":true,"messages":[{"role":"user","content":"hi"}]}`, map[string]string{"api-key": "k"})
	_, datas := sseEvents(t, resp.Body)
	if len(datas) < 3 || !strings.Contains(datas[0], `"choices":[]`) || !strings.Contains(datas[0], "prompt_filter_results") || datas[len(datas)-1] != "[DONE]" {
		t.Errorf("Azure stream: %q", datas)
	}
}

func TestAnthropicDialect(t *testing.T) {
	s := start(t, upstreamsim.Options{Name: "an", APIKey: "k", Models: []string{"claude-x"}, Chunks: 3})
	url := s.AnthropicURL() + "/v1/messages"
	hdr := map[string]string{"x-api-key": "k", "anthropic-version": "2023-06-01"}
	msg := `{"model":"claude-x","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name   string
		body   string
		header map[string]string
		status int
		want   []string
	}{
		{"message", msg, hdr, 200, []string{`"type":"message"`, `"text":"hello from an: claude-x"`, `"stop_reason":"end_turn"`, `"input_tokens":1`}},
		{"bearer is not Anthropic auth", msg, map[string]string{"Authorization": "Bearer k", "anthropic-version": "2023-06-01"}, 401,
			[]string{`"type":"authentication_error"`}},
		{"version required", msg, map[string]string{"x-api-key": "k"}, 400, []string{`"anthropic-version: header is required"`}},
		{"max_tokens required", `{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}`, hdr, 400, []string{`"max_tokens: Field required"`}},
		{"unknown model", `{"model":"gpt","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`, hdr, 404, []string{`"type":"not_found_error"`}},
		{"overloaded", msg, map[string]string{"x-api-key": "k", "anthropic-version": "2023-06-01", "X-Sim-Fail-Status": "529"}, 529,
			[]string{`"type":"overloaded_error"`, `"message":"Overloaded"`}},
		{"tool use", `{"model":"claude-x","max_tokens":100,"tools":[{"name":"t","input_schema":{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}}],"messages":[{"role":"user","content":"hi"}]}`,
			hdr, 200, []string{`"type":"tool_use"`, `"name":"t"`, `"input":{"n":1}`, `"stop_reason":"tool_use"`}},
		{"tool result", `{"model":"claude-x","max_tokens":100,"tools":[{"name":"t"}],"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"t","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":"42"}]}]}`,
			hdr, 200, []string{`"text":"hello from an: claude-x; tool result: 42"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, "POST", url, tt.body, tt.header)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("body lacks %s: %s", w, b)
				}
			}
		})
	}

	t.Run("stream", func(t *testing.T) {
		resp := do(t, "POST", url, strings.Replace(msg, `"max_tokens"`, `"stream":true,"max_tokens"`, 1), hdr)
		names, datas := sseEvents(t, resp.Body)
		want := []string{"message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
			"content_block_delta", "content_block_stop", "message_delta", "message_stop"}
		if strings.Join(names, ",") != strings.Join(want, ",") {
			t.Fatalf("events %v, want %v", names, want)
		}
		text := ""
		for i, d := range datas {
			var ev struct {
				Type  string `json:"type"`
				Delta struct {
					Text string `json:"text"`
				} `json:"delta"`
			}
			if err := json.Unmarshal([]byte(d), &ev); err != nil || ev.Type != names[i] {
				t.Fatalf("event %d %q: %v", i, d, err)
			}
			text += ev.Delta.Text
		}
		if text != upstreamsim.Reply("an", "claude-x") {
			t.Errorf("streamed text %q", text)
		}
	})
	t.Run("stream error", func(t *testing.T) {
		h := map[string]string{"x-api-key": "k", "anthropic-version": "2023-06-01", "X-Sim-Stream-Error-After": "2"}
		resp := do(t, "POST", url, strings.Replace(msg, `"max_tokens"`, `"stream":true,"max_tokens"`, 1), h)
		names, datas := sseEvents(t, resp.Body)
		if resp.StatusCode != http.StatusOK || len(names) != 3 || names[2] != "error" || !strings.Contains(datas[2], "overloaded_error") {
			t.Errorf("events %v %q", names, datas)
		}
	})
	t.Run("models", func(t *testing.T) {
		resp := do(t, "GET", s.AnthropicURL()+"/v1/models", "", hdr)
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), `"type":"model","id":"claude-x"`) && !strings.Contains(string(b), `"id":"claude-x"`) || !strings.Contains(string(b), `"has_more":false`) {
			t.Errorf("models: %s", b)
		}
	})
}

func TestOpenAIToolCalls(t *testing.T) {
	s := start(t, upstreamsim.Options{Name: "oa"})
	tools := `"tools":[{"type":"function","function":{"name":"w","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]`
	resp := do(t, "POST", s.URL()+"/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],`+tools+`}`, nil)
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `"tool_calls":[{"id":"call_`) || !strings.Contains(string(b), `"arguments":"{\"city\":\"sim\"}"`) ||
		!strings.Contains(string(b), `"finish_reason":"tool_calls"`) || !strings.Contains(string(b), `"content":null`) {
		t.Errorf("tool call: %s", b)
	}
	resp = do(t, "POST", s.URL()+"/chat/completions", `{"model":"m","tool_choice":"none","messages":[{"role":"user","content":"hi"}],`+tools+`}`, nil)
	b, _ = io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `"content":"hello from oa: m"`) {
		t.Errorf("tool_choice none: %s", b)
	}
	resp = do(t, "POST", s.URL()+"/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"rainy"}],`+tools+`}`, nil)
	_, datas := sseEvents(t, resp.Body)
	text := ""
	for _, d := range datas[:len(datas)-1] {
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		_ = json.Unmarshal([]byte(d), &c)
		for _, ch := range c.Choices {
			text += ch.Delta.Content
		}
	}
	if text != "hello from oa: m; tool result: rainy" {
		t.Errorf("after tool result: %q", text)
	}
}
