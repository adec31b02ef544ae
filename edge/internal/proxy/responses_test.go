package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// responsesDoc: model "m" over two native OpenAI accounts a and b (round robin, so
// consecutive requests alternate), model "an" over an Anthropic account, model "chat"
// over an OpenAI-compatible account configured without the Responses API, and keys
// u (everything) and other (only "chat").
func responsesDoc(a, b, an, chat string) string {
	return fmt.Sprintf(`
[settings]
circuit_breaker_failure_threshold = 1
circuit_breaker_timeout_seconds = 60
[providers.a]
name = "a"
base_url = %q
models = ["up-a"]
[providers.b]
name = "b"
base_url = %q
models = ["up-b"]
[providers.an]
name = "an"
base_url = %q
backend_type = "anthropic"
models = ["claude-x"]
[providers.chat]
name = "chat"
base_url = %q
responses_api = "chat"
models = ["chat-x"]
[models.m]
name = "m"
strategy = "round_robin"
[[models.m.backends]]
provider = "a"
model = "up-a"
[[models.m.backends]]
provider = "b"
model = "up-b"
[models.an]
name = "an"
[[models.an.backends]]
provider = "an"
model = "claude-x"
[models.chat]
name = "chat"
[[models.chat.backends]]
provider = "chat"
model = "chat-x"
[users.u]
name = "u"
token = "t"
[users.other]
name = "other"
token = "o"
allowed_models = ["chat"]
`, a, b, strings.TrimSuffix(an, "/v1"), chat)
}

type responseObject struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	Status string `json:"status"`
	Store  bool   `json:"store"`
	Model  string `json:"model"`
	Output []struct {
		Type    string `json:"type"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
	Usage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

func (r responseObject) text() string {
	var b strings.Builder
	for _, o := range r.Output {
		for _, c := range o.Content {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

func decodeResponse(t testing.TB, r result) responseObject {
	t.Helper()
	var o responseObject
	if r.status != 200 || json.Unmarshal([]byte(r.body), &o) != nil || o.Object != "response" {
		t.Fatalf("not a response: %d %s", r.status, r.body)
	}
	return o
}

func call(t testing.TB, method, url, token string) result {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return result{resp.StatusCode, resp.Header, readAll(t, resp)}
}

func TestResponsesAPI(t *testing.T) {
	a := startSim(t, "a", upstreamsim.Options{})
	b := startSim(t, "b", upstreamsim.Options{})
	an := startSim(t, "an", upstreamsim.Options{})
	chat := startSim(t, "chat", upstreamsim.Options{})
	edge, _ := edgeFor(t, responsesDoc(a.URL(), b.URL(), an.URL(), chat.URL()))
	url := edge + "/v1/responses"

	first := decodeResponse(t, post(t, url, "t", `{"model":"m","input":"hi"}`))
	if !strings.HasPrefix(first.ID, "resp_") || first.text() == "" {
		t.Fatalf("first response %+v", first)
	}
	creator := "a"
	if strings.Contains(first.text(), "from b") {
		creator = "b"
	}
	t.Run("continuations go to the account that holds the response", func(t *testing.T) {
		prev := first
		for turn := 2; turn <= 5; turn++ { // round robin would alternate accounts
			next := decodeResponse(t, post(t, url, "t", `{"model":"m","input":"more","previous_response_id":"`+prev.ID+`"}`))
			want := upstreamsim.ResponsesReply(creator, turn)
			if next.text() != want {
				t.Fatalf("turn %d: %q, want %q", turn, next.text(), want)
			}
			prev = next
		}
	})
	t.Run("streamed continuation", func(t *testing.T) {
		r := post(t, url, "t", `{"model":"m","stream":true,"input":"more","previous_response_id":"`+first.ID+`"}`)
		if r.status != 200 || !strings.Contains(r.body, "event: response.completed") || strings.Contains(r.body, "[DONE]") {
			t.Fatalf("%d %s", r.status, r.body)
		}
		// Every id the client sees is the gateway's: none of the upstream's leaks.
		var ids []string
		for _, line := range strings.Split(r.body, "\n") {
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				var ev struct {
					Response *struct{ ID string } `json:"response"`
				}
				if json.Unmarshal([]byte(d), &ev) == nil && ev.Response != nil {
					ids = append(ids, ev.Response.ID)
				}
			}
		}
		if len(ids) < 2 {
			t.Fatalf("no response ids in %s", r.body)
		}
		for _, id := range ids {
			if id != ids[0] || len(id) < 40 {
				t.Fatalf("stream carries ids %v", ids)
			}
		}
		got := call(t, http.MethodGet, url+"/"+ids[0], "t")
		if o := decodeResponse(t, got); o.ID != ids[0] || o.text() != upstreamsim.ResponsesReply(creator, 2) {
			t.Fatalf("retrieved %+v", o)
		}
	})
	t.Run("retrieve, input items, cancel, delete", func(t *testing.T) {
		got := decodeResponse(t, call(t, http.MethodGet, url+"/"+first.ID, "t"))
		if got.ID != first.ID || got.text() != first.text() {
			t.Fatalf("retrieved %+v, created %+v", got, first)
		}
		items := call(t, http.MethodGet, url+"/"+first.ID+"/input_items?limit=5", "t")
		if items.status != 200 || !strings.Contains(items.body, `"object":"list"`) {
			t.Fatalf("input items: %d %s", items.status, items.body)
		}
		c := call(t, http.MethodPost, url+"/"+first.ID+"/cancel", "t")
		if c.status != 400 {
			t.Fatalf("cancel of a finished response: %d %s", c.status, c.body)
		}
		openAIError(t, c.body)
		d := call(t, http.MethodDelete, url+"/"+first.ID, "t")
		var del struct {
			ID      string
			Deleted bool
		}
		if d.status != 200 || json.Unmarshal([]byte(d.body), &del) != nil || del.ID != first.ID || !del.Deleted {
			t.Fatalf("delete: %d %s", d.status, d.body)
		}
		if g := call(t, http.MethodGet, url+"/"+first.ID, "t"); g.status != 404 {
			t.Fatalf("deleted response retrieved: %d %s", g.status, g.body)
		}
		if m := call(t, http.MethodPut, url+"/"+first.ID, "t"); m.status != 405 || m.header.Get("Allow") != "GET, DELETE" {
			t.Fatalf("PUT: %d %s", m.status, m.body)
		}
	})
	t.Run("bad ids", func(t *testing.T) {
		live := decodeResponse(t, post(t, url, "t", `{"model":"m","input":"hi"}`))
		raw := []byte(live.ID)
		raw[len(raw)-3] ^= 1 // still base64, no longer verifies
		for _, tt := range []struct {
			name, id, token string
			status          int
			code            string
		}{
			{"not ours", "resp_abc", "t", 404, "invalid_response_id"},
			{"no prefix", "msg_123", "t", 404, "invalid_response_id"},
			{"tampered", string(raw), "t", 404, "invalid_response_id"},
			{"key may not use its model", live.ID, "o", 403, "response_not_allowed"},
			{"wrong key", live.ID, "nope", 401, "invalid_api_key"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := call(t, http.MethodGet, url+"/"+tt.id, tt.token)
				if _, _, code := openAIError(t, r.body); r.status != tt.status || code != tt.code {
					t.Fatalf("%d %s", r.status, r.body)
				}
			})
		}
		r := post(t, url, "t", `{"model":"m","input":"x","previous_response_id":"`+string(raw)+`"}`)
		if _, _, code := openAIError(t, r.body); r.status != 400 || code != "invalid_response_id" {
			t.Fatalf("tampered previous_response_id: %d %s", r.status, r.body)
		}
		r = post(t, url, "t", `{"model":"chat","input":"x","previous_response_id":"`+live.ID+`"}`)
		if _, _, code := openAIError(t, r.body); r.status != 400 || code != "previous_response_wrong_model" {
			t.Fatalf("continued with a model its provider does not serve: %d %s", r.status, r.body)
		}
	})
	t.Run("translated: Anthropic and chat-only accounts", func(t *testing.T) {
		for _, model := range []string{"an", "chat"} {
			o := decodeResponse(t, post(t, url, "t", `{"model":"`+model+`","input":"hi","instructions":"be brief"}`))
			if o.Status != "completed" || o.Store || !strings.Contains(o.text(), "from "+model) {
				t.Fatalf("%s: %+v", model, o)
			}
			r := call(t, http.MethodGet, url+"/"+o.ID, "t")
			if _, _, code := openAIError(t, r.body); r.status != 404 || code != "response_not_stored" {
				t.Fatalf("%s: retrieve translated: %d %s", model, r.status, r.body)
			}
			r = post(t, url, "t", `{"model":"`+model+`","input":"x","previous_response_id":"`+o.ID+`"}`)
			if _, _, code := openAIError(t, r.body); r.status != 400 || code != "previous_response_not_stored" {
				t.Fatalf("%s: continue translated: %d %s", model, r.status, r.body)
			}
			s := post(t, url, "t", `{"model":"`+model+`","input":"hi","stream":true}`)
			if s.status != 200 || !strings.Contains(s.body, "event: response.output_text.delta") ||
				!strings.Contains(s.body, "event: response.completed") || strings.Contains(s.body, "[DONE]") {
				t.Fatalf("%s: translated stream: %d %s", model, s.status, s.body)
			}
		}
		if chat.Stats().ChatRequests == 0 {
			t.Error("the chat-only account was not asked with chat completions")
		}
	})
	t.Run("the holding backend is down: a clear 503, not another account's 404", func(t *testing.T) {
		live := decodeResponse(t, post(t, url, "t", `{"model":"m","input":"hi"}`))
		holder := map[bool]*upstreamsim.Server{true: a, false: b}[strings.Contains(live.text(), "from a")]
		name := map[bool]string{true: "a", false: "b"}[holder == a]
		holder.SetOptions(upstreamsim.Options{Name: name, FailStatus: 503})
		defer holder.SetOptions(upstreamsim.Options{Name: name})
		// Trip its breaker (threshold 1) with a request that fails over to the other.
		for i := 0; i < 4; i++ {
			post(t, url, "t", `{"model":"m","input":"hi"}`)
		}
		r := post(t, url, "t", `{"model":"m","input":"x","previous_response_id":"`+live.ID+`"}`)
		if _, _, code := openAIError(t, r.body); r.status != 503 || code != "response_backend_unavailable" || r.header.Get("Retry-After") == "" {
			t.Fatalf("%d %v %s", r.status, r.header, r.body)
		}
	})
	t.Run("stream fails over before content", func(t *testing.T) {
		a.SetOptions(upstreamsim.Options{Name: "a", FailAfterChunks: 1})
		b.SetOptions(upstreamsim.Options{Name: "b", FailAfterChunks: 1})
		defer a.SetOptions(upstreamsim.Options{Name: "a"})
		defer b.SetOptions(upstreamsim.Options{Name: "b"})
		r := post(t, url, "t", `{"model":"m","input":"hi","stream":true}`)
		if r.status != 502 {
			t.Fatalf("both accounts cut their streams before content: %d %s", r.status, r.body)
		}
		openAIError(t, r.body)
	})
}

// A request translation cannot express (a hosted tool) skips translated backends for
// one that speaks the Responses API natively; with none, it is the client's 400.
func TestResponsesUnexpressibleGoesNative(t *testing.T) {
	an := startSim(t, "an", upstreamsim.Options{})
	oa := startSim(t, "oa", upstreamsim.Options{})
	edge, _ := edgeFor(t, configTOML("failover", "max_retries = 1",
		backendSpec{id: "an", url: an.AnthropicURL(), priority: 1, extra: `backend_type = "anthropic"`},
		backendSpec{id: "oa", url: oa.URL(), priority: 2}))
	body := `{"model":"m","input":"news?","tools":[{"type":"web_search"}]}`
	if o := decodeResponse(t, post(t, edge+"/v1/responses", "t", body)); !strings.Contains(o.text(), "from oa") {
		t.Fatalf("served by %q", o.text())
	}
	only, _ := edgeFor(t, configTOML("failover", "",
		backendSpec{id: "an", url: an.AnthropicURL(), extra: `backend_type = "anthropic"`}))
	r := post(t, only+"/v1/responses", "t", body)
	if _, _, code := openAIError(t, r.body); r.status != 400 || code != "unsupported_for_provider" || !strings.Contains(r.body, "web_search") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if an.Stats().Requests != 0 {
		t.Fatal("the Anthropic backend was sent a request translation cannot express")
	}
}
