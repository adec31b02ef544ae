package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// replyOf is the assistant text of a chat answer: the simulator names itself in it.
func replyOf(t testing.TB, body string) string {
	t.Helper()
	var c struct {
		Choices []struct {
			Message struct{ Content string }
		}
	}
	if json.Unmarshal([]byte(body), &c) != nil || len(c.Choices) == 0 {
		t.Fatalf("not a chat completion: %s", body)
	}
	return c.Choices[0].Message.Content
}

func get(t testing.TB, url string, header map[string]string) result {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = fmt.Fprint(&b, readAll(t, resp))
	return result{resp.StatusCode, resp.Header, b.String()}
}

func postWith(t testing.TB, url, body string, header map[string]string) result {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer t")
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return result{resp.StatusCode, resp.Header, readAll(t, resp)}
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func TestAliasesAndProviderAddressedNames(t *testing.T) {
	a := startSim(t, "a", upstreamsim.Options{})
	b := startSim(t, "b", upstreamsim.Options{})
	doc := fmt.Sprintf(`
[providers.pa]
name = "pa"
base_url = %q
models = ["up-a"]
[providers.pb]
name = "pb"
base_url = %q
models = ["up-b"]
[models.gpt_4]
name = "gpt-4"
aliases = ["gpt4", "gpt-4-0613"]
[[models.gpt_4.backends]]
provider = "pa"
model = "up-a"
[models.pb_any]
name = "pb-any"
wildcard = "pb/gpt-*"
[users.u]
name = "u"
token = "t"
[users.limited]
name = "limited"
token = "lim"
allowed_models = ["gpt_4"]
`, a.URL(), b.URL())
	edge, _ := edgeFor(t, doc)
	for _, tt := range []struct {
		name, model, token string
		status             int
		sim, upstream      string
	}{
		{name: "name", model: "gpt-4", token: "t", status: 200, sim: "a", upstream: "up-a"},
		{name: "alias", model: "gpt4", token: "t", status: 200, sim: "a", upstream: "up-a"},
		{name: "second alias", model: "gpt-4-0613", token: "t", status: 200, sim: "a", upstream: "up-a"},
		{name: "provider-addressed", model: "pb/gpt-4o-mini", token: "t", status: 200, sim: "b", upstream: "gpt-4o-mini"},
		{name: "provider-addressed outside the prefix", model: "pb/claude-3", token: "t", status: 404},
		{name: "unknown provider", model: "nope/gpt-4o", token: "t", status: 404},
		{name: "provider with no wildcard", model: "pa/gpt-4o", token: "t", status: 404},
		{name: "allowed_models applies to the wildcard model", model: "pb/gpt-4o", token: "lim", status: 403},
		{name: "allowed_models applies to aliases", model: "gpt4", token: "lim", status: 200, sim: "a", upstream: "up-a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, edge+"/v1/chat/completions", tt.token, `{"model":`+fmt.Sprintf("%q", tt.model)+`,"messages":[{"role":"user","content":"hi"}]}`)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status != 200 {
				openAIError(t, r.body)
				return
			}
			if got := replyOf(t, r.body); !strings.Contains(got, tt.sim) {
				t.Errorf("answered by %q, want simulator %s", got, tt.sim)
			}
			sim := map[string]*upstreamsim.Server{"a": a, "b": b}[tt.sim]
			var sent struct{ Model string }
			_ = json.Unmarshal(sim.Stats().LastBody, &sent)
			if sent.Model != tt.upstream {
				t.Errorf("upstream asked for model %q, want %q", sent.Model, tt.upstream)
			}
		})
	}
	t.Run("models lists names and aliases per the key", func(t *testing.T) {
		ids := func(token string) []string {
			r := get(t, edge+"/v1/models", map[string]string{"Authorization": "Bearer " + token})
			var l struct{ Data []struct{ ID string } }
			if err := json.Unmarshal([]byte(r.body), &l); err != nil {
				t.Fatal(r.body)
			}
			var out []string
			for _, d := range l.Data {
				out = append(out, d.ID)
			}
			return out
		}
		if got := strings.Join(ids("t"), ","); got != "gpt-4,gpt4,gpt-4-0613,pb-any" {
			t.Errorf("models for u: %s", got)
		}
		if got := strings.Join(ids("lim"), ","); got != "gpt-4,gpt4,gpt-4-0613" {
			t.Errorf("models for limited: %s", got)
		}
	})
	t.Run("models in Anthropic's shape", func(t *testing.T) {
		r := get(t, edge+"/v1/models", map[string]string{"X-Api-Key": "lim", "Anthropic-Version": "2023-06-01"})
		var l struct {
			Data []struct {
				Type, ID string
			}
			HasMore bool   `json:"has_more"`
			FirstID string `json:"first_id"`
			LastID  string `json:"last_id"`
		}
		if err := json.Unmarshal([]byte(r.body), &l); err != nil || r.status != 200 || len(l.Data) != 3 ||
			l.Data[0].Type != "model" || l.FirstID != "gpt-4" || l.LastID != "gpt-4-0613" || l.HasMore {
			t.Fatalf("%d %s", r.status, r.body)
		}
		r = get(t, edge+"/v1/models", map[string]string{"X-Api-Key": "wrong", "Anthropic-Version": "2023-06-01"})
		if typ, _ := anthropicError(t, r.body); r.status != 401 || typ != "authentication_error" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

func TestFallbacks(t *testing.T) {
	long := startSim(t, "long", upstreamsim.Options{FailStatus: 400, FailCode: "context_length_exceeded"})
	filtered := startSim(t, "filtered", upstreamsim.Options{FailStatus: 400, FailCode: "content_filter"})
	down := startSim(t, "down", upstreamsim.Options{FailStatus: 503})
	big := startSim(t, "big", upstreamsim.Options{})
	safe := startSim(t, "safe", upstreamsim.Options{})
	cheap := startSim(t, "cheap", upstreamsim.Options{})
	anthLong := startSim(t, "anth-long", upstreamsim.Options{FailStatus: 400, FailCode: "context_length_exceeded"})
	prov := func(id, url, extra string) string {
		return fmt.Sprintf("[providers.%s]\nname = %q\nbase_url = %q\nmodels = [\"x\"]\n%s\n", id, id, url, extra)
	}
	model := func(id, fallbacks string, providers ...string) string {
		s := fmt.Sprintf("[models.%s]\nname = %q\nstrategy = \"failover\"\n%s\n", id, id, fallbacks)
		for i, p := range providers {
			s += fmt.Sprintf("[[models.%s.backends]]\nprovider = %q\nmodel = \"x\"\npriority = %d\n", id, p, i)
		}
		return s
	}
	doc := "[settings]\nmax_retries = 5\n" +
		prov("long", long.URL(), "") + prov("long2", long.URL(), "") + prov("filtered", filtered.URL(), "") +
		prov("down", down.URL(), "") + prov("big", big.URL(), "") + prov("safe", safe.URL(), "") + prov("cheap", cheap.URL(), "") +
		prov("anthlong", strings.TrimSuffix(anthLong.URL(), "/v1"), `backend_type = "anthropic"`) +
		model("small", `fallbacks = { context_window = "large", content_filter = "careful", any = "spare" }`, "long", "long2") +
		model("filtering", `fallbacks = { content_filter = "careful" }`, "filtered") +
		model("flaky", `fallbacks = { any = "spare" }`, "down") +
		model("claude_small", `fallbacks = { context_window = "large" }`, "anthlong") +
		model("no_fallback", "", "long") +
		model("chain", `fallbacks = { any = "flaky" }`, "down") +
		model("large", "", "big") + model("careful", "", "safe") + model("spare", "", "cheap") +
		"[users.u]\nname = \"u\"\ntoken = \"t\"\n[users.nospare]\nname = \"nospare\"\ntoken = \"ns\"\nallowed_models = [\"flaky\"]\n"
	edge, _ := edgeFor(t, doc)
	for _, tt := range []struct {
		name, model, token string
		status             int
		servedBy, header   string
	}{
		{name: "context window", model: "small", status: 200, servedBy: "big", header: "large"},
		{name: "content filter", model: "filtering", status: 200, servedBy: "safe", header: "careful"},
		{name: "retries exhausted", model: "flaky", status: 200, servedBy: "cheap", header: "spare"},
		{name: "Anthropic's prompt too long", model: "claude_small", status: 200, servedBy: "big", header: "large"},
		{name: "chained: any, then any again", model: "chain", status: 200, servedBy: "cheap", header: "spare"},
		{name: "no fallback configured: the upstream's 400 stands", model: "no_fallback", status: 400, header: "no_fallback"},
		{name: "fallback the key may not use: the failure stands", model: "flaky", token: "ns", status: 503, header: "flaky"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token
			if token == "" {
				token = "t"
			}
			r := post(t, edge+"/v1/chat/completions", token, `{"model":"`+tt.model+`","messages":[{"role":"user","content":"hi"}]}`)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if got := r.header.Get("X-Berry-Model"); got != tt.header {
				t.Errorf("X-Berry-Model %q, want %q", got, tt.header)
			}
			if tt.status != 200 {
				openAIError(t, r.body)
				return
			}
			if got := replyOf(t, r.body); !strings.Contains(got, tt.servedBy) {
				t.Errorf("answered by %q, want %s", got, tt.servedBy)
			}
		})
	}
	t.Run("every backend of the model is tried before the fallback", func(t *testing.T) {
		long.ResetStats()
		r := post(t, edge+"/v1/chat/completions", "t", `{"model":"small","messages":[{"role":"user","content":"hi"}]}`)
		if r.status != 200 || long.Stats().ChatRequests != 2 {
			t.Fatalf("status %d after %d attempts on the small model's two backends", r.status, long.Stats().ChatRequests)
		}
	})
	t.Run("streams fall back before content", func(t *testing.T) {
		big.ResetStats()
		r := post(t, edge+"/v1/chat/completions", "t", `{"model":"small","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		if r.status != 200 || !strings.HasSuffix(r.body, "data: [DONE]\n\n") || big.Stats().ChatRequests != 1 || r.header.Get("X-Berry-Model") != "large" {
			t.Fatalf("%d %v %s", r.status, r.header, r.body)
		}
	})
	t.Run("on /v1/messages", func(t *testing.T) {
		r := postWith(t, edge+"/v1/messages", `{"model":"small","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`,
			map[string]string{"Anthropic-Version": "2023-06-01"})
		if r.status != 200 || !strings.Contains(r.body, "big") || r.header.Get("X-Berry-Model") != "large" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

func TestSessionAffinity(t *testing.T) {
	sims := map[string]*upstreamsim.Server{}
	var specs []backendSpec
	for _, id := range []string{"s1", "s2", "s3", "s4"} {
		sims[id] = startSim(t, id, upstreamsim.Options{})
		specs = append(specs, backendSpec{id: id, url: sims[id].URL()})
	}
	for _, tt := range []struct {
		name, affinity string
		send           func(edge, session string) result
	}{
		{name: "header", affinity: `affinity = "header:X-Session-Id"`, send: func(edge, session string) result {
			return postWith(t, edge+"/v1/chat/completions", chatBody, map[string]string{"x-session-id": session})
		}},
		{name: "user", affinity: `affinity = "user"`, send: func(edge, session string) result {
			return post(t, edge+"/v1/chat/completions", "t", `{"model":"m","user":"`+session+`","messages":[{"role":"user","content":"hi"}]}`)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(configTOML("round_robin", "circuit_breaker_failure_threshold = 1\ncircuit_breaker_timeout_seconds = 1", specs...),
				"strategy = \"round_robin\"\n", "strategy = \"round_robin\"\n"+tt.affinity+"\n", 1)
			// Two edges with no shared state pin alike.
			edge1, _ := edgeFor(t, doc)
			edge2, _ := edgeFor(t, doc)
			who := func(edge, session string) string {
				r := tt.send(edge, session)
				if r.status != 200 {
					t.Fatalf("%d %s", r.status, r.body)
				}
				for id := range sims {
					if strings.Contains(replyOf(t, r.body), "from "+id) {
						return id
					}
				}
				t.Fatalf("no simulator named in %s", r.body)
				return ""
			}
			pinnedTo := map[string]string{}
			used := map[string]bool{}
			for k := range 24 {
				session := fmt.Sprint("session-", k)
				first := who(edge1, session)
				for range 3 {
					if got := who(edge1, session); got != first {
						t.Fatalf("session %s went to %s, then %s", session, first, got)
					}
					if got := who(edge2, session); got != first {
						t.Fatalf("session %s: edge 1 chose %s, edge 2 %s", session, first, got)
					}
				}
				pinnedTo[session] = first
				used[first] = true
			}
			if len(used) < 3 {
				t.Errorf("24 sessions used only %v of 4 backends", used)
			}
			// Requests without a value keep the strategy (round robin: every backend).
			seen := map[string]bool{}
			for range 8 {
				r := post(t, edge1+"/v1/chat/completions", "t", chatBody)
				for id := range sims {
					if strings.Contains(replyOf(t, r.body), "from "+id) {
						seen[id] = true
					}
				}
			}
			if len(seen) != 4 {
				t.Errorf("requests without a session reached %v, want all 4 (round robin)", seen)
			}
			// The pinned backend fails: its sessions move, and only its sessions.
			victim := pinnedTo["session-0"]
			sims[victim].SetOptions(upstreamsim.Options{Name: victim, FailStatus: 503})
			for session, was := range pinnedTo {
				got := who(edge1, session)
				if was == victim && got == victim {
					t.Errorf("session %s stayed on failing %s", session, victim)
				}
				if was != victim && got != was {
					t.Errorf("session %s moved from healthy %s to %s", session, was, got)
				}
			}
			sims[victim].SetOptions(upstreamsim.Options{Name: victim})
		})
	}
}

// TestResponseModelField: on every path the answer's "model" is the upstream model
// that served it, as its provider names it, and X-Berry-Model the gateway's model.
func TestResponseModelField(t *testing.T) {
	oa := startSim(t, "oa", upstreamsim.Options{})
	an := startSim(t, "an", upstreamsim.Options{})
	doc := fmt.Sprintf(`
[providers.oa]
name = "oa"
base_url = %q
models = ["gpt-up"]
[providers.an]
name = "an"
base_url = %q
backend_type = "anthropic"
models = ["claude-up"]
[models.o]
name = "client-o"
aliases = ["alias-o"]
[[models.o.backends]]
provider = "oa"
model = "gpt-up"
[models.a]
name = "client-a"
[[models.a.backends]]
provider = "an"
model = "claude-up"
[users.u]
name = "u"
token = "t"
`, oa.URL(), strings.TrimSuffix(an.URL(), "/v1"))
	edge, _ := edgeFor(t, doc)
	anthropic := map[string]string{"Anthropic-Version": "2023-06-01"}
	for _, tt := range []struct {
		name, path, body string
		header           map[string]string
		upstream, berry  string
	}{
		{"chat", "/v1/chat/completions", `{"model":"alias-o","messages":[{"role":"user","content":"hi"}]}`, nil, "gpt-up", "client-o"},
		{"chat translated to Anthropic", "/v1/chat/completions", `{"model":"client-a","messages":[{"role":"user","content":"hi"}]}`, nil, "claude-up", "client-a"},
		{"messages native", "/v1/messages", `{"model":"client-a","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`, anthropic, "claude-up", "client-a"},
		{"messages translated", "/v1/messages", `{"model":"client-o","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`, anthropic, "gpt-up", "client-o"},
		{"responses native", "/v1/responses", `{"model":"client-o","input":"hi"}`, nil, "gpt-up", "client-o"},
		{"responses translated", "/v1/responses", `{"model":"client-a","input":"hi"}`, nil, "claude-up", "client-a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := postWith(t, edge+tt.path, tt.body, tt.header)
			var got struct{ Model string }
			if r.status != 200 || json.Unmarshal([]byte(r.body), &got) != nil {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if got.Model != tt.upstream || r.header.Get("X-Berry-Model") != tt.berry {
				t.Errorf("model %q, X-Berry-Model %q; want %q, %q", got.Model, r.header.Get("X-Berry-Model"), tt.upstream, tt.berry)
			}
		})
	}
}

func TestCountTokens(t *testing.T) {
	oa := startSim(t, "oa", upstreamsim.Options{})
	an := startSim(t, "an", upstreamsim.Options{})
	edge, _ := edgeFor(t, meteringDoc(oa.URL(), an.URL())) // model "o" on OpenAI, "a" on Anthropic
	body := `{"model":"%s","messages":[{"role":"user","content":"` + strings.Repeat("word ", 200) + `"}]}`
	count := func(model string) (int, bool, result) {
		r := postWith(t, edge+"/v1/messages/count_tokens", fmt.Sprintf(body, model), map[string]string{"Anthropic-Version": "2023-06-01"})
		var c struct {
			InputTokens int  `json:"input_tokens"`
			Estimated   bool `json:"estimated"`
		}
		if r.status != 200 || json.Unmarshal([]byte(r.body), &c) != nil || c.InputTokens <= 0 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		return c.InputTokens, c.Estimated, r
	}
	before := an.Stats().Requests
	if _, est, r := count("a"); est || r.header.Get("X-Berry-Estimated") != "" || an.Stats().Requests != before+1 {
		t.Errorf("Anthropic backend: estimated %v, header %q, upstream requests %d→%d", est, r.header.Get("X-Berry-Estimated"), before, an.Stats().Requests)
	}
	var sent struct{ Model string }
	if json.Unmarshal(an.Stats().LastBody, &sent); sent.Model != "claude-up" {
		t.Errorf("upstream asked to count for model %q", sent.Model)
	}
	n, est, r := count("o")
	if !est || r.header.Get("X-Berry-Estimated") != "true" || n < 250 || n > 260 {
		t.Errorf("OpenAI backend: %d tokens, estimated %v, header %q (want ≈ 1000 chars / 4 + 4)", n, est, r.header.Get("X-Berry-Estimated"))
	}
	for _, tt := range []struct {
		name, body, token string
		status            int
	}{
		{"unknown model", `{"model":"nope","messages":[]}`, "t", 404},
		{"bad key", `{"model":"a","messages":[]}`, "wrong", 401},
		{"not JSON", `{`, "t", 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, edge+"/v1/messages/count_tokens", strings.NewReader(tt.body))
			req.Header.Set("X-Api-Key", tt.token)
			resp, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b := readAll(t, resp)
			if resp.StatusCode != tt.status {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			anthropicError(t, b)
		})
	}
}
