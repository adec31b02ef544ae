package proxy

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

const messagesBody = `{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`
const messagesStreamBody = `{"model":"m","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`

// postMessages posts to /v1/messages with the given auth headers.
func postMessages(t testing.TB, url string, headers map[string]string, body string) result {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/messages", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/messages: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

// anthropicError decodes {"type":"error","error":{"type","message"}}, failing on any
// other shape.
func anthropicError(t testing.TB, body string) (typ, msg string) {
	t.Helper()
	var e struct {
		Type  string `json:"type"`
		Error *struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Type != "error" || e.Error == nil || e.Error.Type == "" || e.Error.Message == "" {
		t.Fatalf("not an Anthropic-style error: %s", body)
	}
	return e.Error.Type, e.Error.Message
}

type messageReply struct {
	Type, Role, Model string
	StopReason        string `json:"stop_reason"`
	Content           []struct{ Type, Text string }
	Usage             struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	}
}

func TestMessagesEndpoint(t *testing.T) {
	an := startSim(t, "an", upstreamsim.Options{APIKey: "k-an"})
	oa := startSim(t, "oa", upstreamsim.Options{APIKey: "k-oa"})
	anEdge, _ := edgeFor(t, configTOML("failover", "", backendSpec{id: "an", url: an.AnthropicURL(), extra: `backend_type = "anthropic"`}))
	oaEdge, _ := edgeFor(t, configTOML("failover", "", backendSpec{id: "oa", url: oa.URL()}))
	bearer := map[string]string{"Authorization": "Bearer t"}
	xKey := map[string]string{"x-api-key": "t"}

	for _, tc := range []struct{ name, edge string }{{"native anthropic", anEdge}, {"translated openai", oaEdge}} {
		t.Run(tc.name+"/buffered with x-api-key", func(t *testing.T) {
			r := postMessages(t, tc.edge, xKey, messagesBody)
			var v messageReply
			if r.status != 200 || json.Unmarshal([]byte(r.body), &v) != nil || v.Type != "message" || v.Role != "assistant" ||
				len(v.Content) == 0 || v.Content[0].Type != "text" || v.Content[0].Text == "" || v.StopReason == "" {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if tc.edge == anEdge && !strings.HasPrefix(r.header.Get("Request-Id"), "req_") {
				t.Fatalf("Anthropic's request-id not passed on: %v", r.header)
			}
		})
		t.Run(tc.name+"/stream with bearer", func(t *testing.T) {
			r := postMessages(t, tc.edge, bearer, messagesStreamBody)
			if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("%d %s", r.status, r.body)
			}
			for _, ev := range []string{"event: message_start", "event: content_block_start", "event: content_block_delta",
				"event: content_block_stop", "event: message_delta", "event: message_stop"} {
				if !strings.Contains(r.body, ev) {
					t.Fatalf("stream lacks %q:\n%s", ev, r.body)
				}
			}
			if strings.Contains(r.body, "[DONE]") || strings.Contains(r.body, "chat.completion") {
				t.Fatalf("OpenAI shapes leaked into an Anthropic stream:\n%s", r.body)
			}
		})
	}

	// Client errors, in Anthropic's shape, the same for either kind of backend.
	for _, tc := range []struct {
		name     string
		headers  map[string]string
		body     string
		status   int
		typ      string
		contains string
	}{
		{"no key", nil, messagesBody, 401, "authentication_error", "x-api-key"},
		{"wrong x-api-key", map[string]string{"x-api-key": "nope"}, messagesBody, 401, "authentication_error", "invalid"},
		{"unknown model", xKey, `{"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, 404, "not_found_error", "nope"},
		{"malformed json", xKey, `{"model":`, 400, "invalid_request_error", ""},
		{"no model", xKey, `{"max_tokens":5,"messages":[]}`, 400, "invalid_request_error", "model"},
	} {
		for _, edge := range []string{anEdge, oaEdge} {
			t.Run("error/"+tc.name, func(t *testing.T) {
				r := postMessages(t, edge, tc.headers, tc.body)
				typ, msg := anthropicError(t, r.body)
				if r.status != tc.status || typ != tc.typ || !strings.Contains(msg, tc.contains) {
					t.Fatalf("got %d %s %q, want %d %s containing %q", r.status, typ, msg, tc.status, tc.typ, tc.contains)
				}
			})
		}
	}

	t.Run("native passthrough sends the provider's key and the client's anthropic-beta", func(t *testing.T) {
		r := postMessages(t, anEdge, map[string]string{"x-api-key": "t", "anthropic-beta": "prompt-caching-2024-07-31"}, messagesBody)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		h := an.Stats().LastHeader
		if h.Get("X-Api-Key") != "k-an" || h.Get("Anthropic-Beta") != "prompt-caching-2024-07-31" || h.Get("Authorization") != "" {
			t.Fatalf("upstream saw x-api-key %q anthropic-beta %q authorization %q",
				h.Get("X-Api-Key"), h.Get("Anthropic-Beta"), h.Get("Authorization"))
		}
		var sent struct{ Model string }
		if json.Unmarshal(an.Stats().LastBody, &sent) != nil || sent.Model != "up-an" {
			t.Fatalf("upstream body %s", an.Stats().LastBody)
		}
	})
	t.Run("unserved Anthropic side endpoint is a 404 in Anthropic's shape", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, anEdge+"/v1/messages/batches", strings.NewReader(messagesBody))
		req.Header.Set("x-api-key", "t")
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if typ, _ := anthropicError(t, string(b)); resp.StatusCode != 404 || typ != "not_found_error" {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	})
	t.Run("translation rejects an invalid Messages request with 400", func(t *testing.T) {
		before := oa.Stats().ChatRequests
		r := postMessages(t, oaEdge, xKey, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`) // no max_tokens
		if typ, msg := anthropicError(t, r.body); r.status != 400 || typ != "invalid_request_error" || !strings.Contains(msg, "max_tokens") {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if oa.Stats().ChatRequests != before {
			t.Fatal("an invalid request reached the upstream")
		}
	})
}

func TestMessagesFailover(t *testing.T) {
	for _, stream := range []bool{false, true} {
		name := "buffered"
		body := messagesBody
		if stream {
			name, body = "stream", messagesStreamBody
		}
		t.Run(name+"/529 then native", func(t *testing.T) {
			bad := startSim(t, "bad", upstreamsim.Options{FailStatus: upstreamsim.StatusOverloaded})
			good := startSim(t, "good", upstreamsim.Options{})
			edge, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
				backendSpec{id: "bad", url: bad.AnthropicURL(), priority: 1, extra: `backend_type = "anthropic"`},
				backendSpec{id: "good", url: good.AnthropicURL(), priority: 2, extra: `backend_type = "anthropic"`}))
			r := postMessages(t, edge, map[string]string{"x-api-key": "t"}, body)
			if r.status != 200 || !strings.Contains(r.body, "up-good") {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if bad.Stats().Requests != 1 {
				t.Fatalf("overloaded backend saw %d requests, want 1", bad.Stats().Requests)
			}
		})
		t.Run(name+"/529 then translated openai", func(t *testing.T) {
			bad := startSim(t, "bad", upstreamsim.Options{FailStatus: upstreamsim.StatusOverloaded})
			good := startSim(t, "good", upstreamsim.Options{})
			edge, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
				backendSpec{id: "bad", url: bad.AnthropicURL(), priority: 1, extra: `backend_type = "anthropic"`},
				backendSpec{id: "good", url: good.URL(), priority: 2}))
			r := postMessages(t, edge, map[string]string{"x-api-key": "t"}, body)
			if r.status != 200 || strings.Contains(r.body, "chat.completion") {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if good.Stats().ChatRequests != 1 {
				t.Fatalf("good saw %d chat requests, want 1", good.Stats().ChatRequests)
			}
		})
		t.Run(name+"/every backend overloaded", func(t *testing.T) {
			bad := startSim(t, "bad", upstreamsim.Options{FailStatus: upstreamsim.StatusOverloaded})
			edge, _ := edgeFor(t, configTOML("failover", "max_retries = 1",
				backendSpec{id: "bad", url: bad.AnthropicURL(), extra: `backend_type = "anthropic"`}))
			r := postMessages(t, edge, map[string]string{"x-api-key": "t"}, body)
			if typ, _ := anthropicError(t, r.body); r.status < 500 || typ != "overloaded_error" {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
	t.Run("stream error event before content fails over", func(t *testing.T) {
		bad := startSim(t, "bad", upstreamsim.Options{})
		good := startSim(t, "good", upstreamsim.Options{})
		edge, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
			backendSpec{id: "bad", url: bad.AnthropicURL(), priority: 1,
				extra: "backend_type = \"anthropic\"\nheaders = { \"X-Sim-Stream-Error-After\" = \"1\" }"},
			backendSpec{id: "good", url: good.URL(), priority: 2}))
		r := postMessages(t, edge, map[string]string{"x-api-key": "t"}, messagesStreamBody)
		if r.status != 200 || !strings.Contains(r.body, "event: message_stop") || strings.Contains(r.body, "overloaded") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	// The first-content rule of the chat path, applied to the OpenAI stream behind a
	// translated one: [DONE] before content is a failure, a finish_reason is an answer.
	for _, tc := range []struct {
		name, upstream string
		failover       bool
	}{
		{"translated stream that ends before content fails over",
			"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\ndata: [DONE]\n\n", true},
		{"translated stream with only a finish reason is an answer",
			"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n" +
				"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = w.Write([]byte(tc.upstream))
			})}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = first.Serve(lis) }()
			t.Cleanup(func() { _ = first.Close() })
			good := startSim(t, "good", upstreamsim.Options{})
			edge, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
				backendSpec{id: "first", url: "http://" + lis.Addr().String() + "/v1", priority: 1},
				backendSpec{id: "good", url: good.AnthropicURL(), priority: 2, extra: `backend_type = "anthropic"`}))
			r := postMessages(t, edge, map[string]string{"x-api-key": "t"}, messagesStreamBody)
			if r.status != 200 || !strings.Contains(r.body, "event: message_stop") {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if got := good.Stats().Requests > 0; got != tc.failover {
				t.Fatalf("failed over = %v, want %v:\n%s", got, tc.failover, r.body)
			}
		})
	}
	t.Run("stream cut after content ends with an Anthropic error event", func(t *testing.T) {
		bad := startSim(t, "bad", upstreamsim.Options{Chunks: 6, FailAfterChunks: 4})
		edge, _ := edgeFor(t, configTOML("failover", "max_retries = 1", backendSpec{id: "bad", url: bad.URL()}))
		r := postMessages(t, edge, map[string]string{"x-api-key": "t"}, messagesStreamBody)
		events := strings.Split(strings.TrimSpace(r.body), "\n\n")
		last := strings.TrimSpace(events[len(events)-1])
		if r.status != 200 || !strings.HasPrefix(last, "event: error\ndata: ") {
			t.Fatalf("%d %s", r.status, r.body)
		}
		anthropicError(t, strings.TrimPrefix(last, "event: error\ndata: "))
		if strings.Contains(r.body, "message_stop") {
			t.Fatalf("a cut stream must not look complete:\n%s", r.body)
		}
	})
	t.Run("native stream error after content is relayed as Anthropic sent it", func(t *testing.T) {
		bad := startSim(t, "bad", upstreamsim.Options{Chunks: 6})
		edge, _ := edgeFor(t, configTOML("failover", "max_retries = 1",
			backendSpec{id: "bad", url: bad.AnthropicURL(),
				extra: "backend_type = \"anthropic\"\nheaders = { \"X-Sim-Stream-Error-After\" = \"5\" }"}))
		r := postMessages(t, edge, map[string]string{"x-api-key": "t"}, messagesStreamBody)
		events := strings.Split(strings.TrimSpace(r.body), "\n\n")
		last := strings.TrimSpace(events[len(events)-1])
		if r.status != 200 || !strings.HasPrefix(last, "event: error\ndata: ") {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if typ, _ := anthropicError(t, strings.TrimPrefix(last, "event: error\ndata: ")); typ != "overloaded_error" {
			t.Fatalf("error type %q", typ)
		}
	})
}
