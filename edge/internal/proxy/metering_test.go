package proxy

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/edge/internal/serving"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// usageOf sums what the runtime's meter holds for key, and empties it.
func usageOf(rt *serving.Runtime, key string) (n, in, out, estimated, cost uint64) {
	for _, r := range rt.Meter().Drain() {
		if r.GetKey() == key {
			n += r.GetRequests()
			in += r.GetInputTokens()
			out += r.GetOutputTokens()
			estimated += r.GetEstimated()
			cost += r.GetCostMicroUsd()
		}
	}
	return
}

// reportedUsage is the usage a buffered chat answer or a stream's usage chunk says.
func reportedUsage(t testing.TB, body string) (in, out uint64) {
	t.Helper()
	for _, part := range append([]string{body}, strings.Split(body, "\n")...) {
		part = strings.TrimPrefix(part, "data: ")
		var v struct {
			Usage *struct {
				PromptTokens     uint64 `json:"prompt_tokens"`
				CompletionTokens uint64 `json:"completion_tokens"`
				InputTokens      uint64 `json:"input_tokens"`
				OutputTokens     uint64 `json:"output_tokens"`
			} `json:"usage"`
		}
		if json.Unmarshal([]byte(part), &v) == nil && v.Usage != nil {
			return v.Usage.PromptTokens + v.Usage.InputTokens, v.Usage.CompletionTokens + v.Usage.OutputTokens
		}
	}
	t.Fatalf("no usage in %s", body)
	return
}

func meteringDoc(oa, an string) string {
	return fmt.Sprintf(`
[providers.oa]
name = "oa"
base_url = %q
models = ["gpt-up"]
[providers.quiet]
name = "quiet"
base_url = %q
stream_usage = "off"
models = ["gpt-up"]
[providers.an]
name = "an"
base_url = %q
backend_type = "anthropic"
models = ["claude-up"]
[models.o]
name = "o"
[[models.o.backends]]
provider = "oa"
model = "gpt-up"
price = { input_per_mtok = 2.0, output_per_mtok = 8.0 }
[models.q]
name = "q"
[[models.q.backends]]
provider = "quiet"
model = "gpt-up"
[models.a]
name = "a"
[[models.a.backends]]
provider = "an"
model = "claude-up"
[users.u]
name = "u"
token = "t"
`, oa, oa, strings.TrimSuffix(an, "/v1"))
}

func TestMetering(t *testing.T) {
	oa := startSim(t, "oa", upstreamsim.Options{Chunks: 6})
	an := startSim(t, "an", upstreamsim.Options{Chunks: 6})
	rt := runtimeFor(t, meteringDoc(oa.URL(), an.URL()))
	edge := serveHandler(t, newHandler(rt, Options{}))
	anthropic := map[string]string{"Anthropic-Version": "2023-06-01"}
	msg := `"messages":[{"role":"user","content":"tell me about usage metering"}]`

	for _, tt := range []struct {
		name, path, body string
		header           map[string]string
		// direct asks the simulator for the same answer with its usage, to compare.
		direct string
	}{
		{"chat", "/v1/chat/completions", `{"model":"o",` + msg + `}`, nil, `{"model":"gpt-up",` + msg + `}`},
		{"chat stream, usage not asked", "/v1/chat/completions", `{"model":"o","stream":true,` + msg + `}`, nil,
			`{"model":"gpt-up","stream":true,"stream_options":{"include_usage":true},` + msg + `}`},
		{"chat stream, usage asked", "/v1/chat/completions", `{"model":"o","stream":true,"stream_options":{"include_usage":true},` + msg + `}`, nil,
			`{"model":"gpt-up","stream":true,"stream_options":{"include_usage":true},` + msg + `}`},
		{"embeddings", "/v1/embeddings", `{"model":"o","input":"a few words to embed"}`, nil, `{"model":"gpt-up","input":"a few words to embed"}`},
		{"messages native", "/v1/messages", `{"model":"a","max_tokens":50,` + msg + `}`, anthropic, ""},
		{"messages native stream", "/v1/messages", `{"model":"a","max_tokens":50,"stream":true,` + msg + `}`, anthropic, ""},
		{"messages translated stream", "/v1/messages", `{"model":"o","max_tokens":50,"stream":true,` + msg + `}`, anthropic, ""},
		{"responses", "/v1/responses", `{"model":"o","input":"tell me about usage metering"}`, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rt.Meter().Drain()
			r := postWith(t, edge+tt.path, tt.body, tt.header)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			n, in, out, est, _ := usageOf(rt, "u")
			if n != 1 || est != 0 || in == 0 || out == 0 && !strings.Contains(tt.path, "embeddings") {
				t.Fatalf("metered %d requests, %d in, %d out, %d estimated", n, in, out, est)
			}
			if tt.direct != "" {
				d := post(t, oa.URL()+tt.path[len("/v1"):], "", tt.direct)
				win, wout := reportedUsage(t, d.body)
				if in != win || out != wout {
					t.Errorf("metered %d in, %d out; the upstream reported %d, %d", in, out, win, wout)
				}
			} else if !strings.Contains(tt.body, `"stream":true`) {
				win, wout := reportedUsage(t, r.body)
				if in != win || out != wout {
					t.Errorf("metered %d in, %d out; the answer says %d, %d", in, out, win, wout)
				}
			}
		})
	}

	t.Run("the client's stream is what it would have been", func(t *testing.T) {
		body := `{"model":"o","stream":true,` + msg + `}`
		via := post(t, edge+"/v1/chat/completions", "t", body)
		asked := string(oa.Stats().LastBody)
		direct := post(t, oa.URL()+"/chat/completions", "", strings.Replace(body, `"o"`, `"gpt-up"`, 1))
		norm := regexp.MustCompile(`"id":"[^"]*"|"created":\d+`)
		if strings.Contains(via.body, `"choices":[]`) {
			t.Fatalf("the client got the usage chunk it did not ask for:\n%s", via.body)
		}
		if a, b := norm.ReplaceAllString(via.body, ""), norm.ReplaceAllString(direct.body, ""); a != b {
			t.Fatalf("through the edge:\n%s\ndirect:\n%s", a, b)
		}
		if !strings.Contains(asked, `"stream_options":{"include_usage":true}`) {
			t.Fatalf("the upstream was not asked for usage: %s", asked)
		}
	})

	t.Run("a provider marked stream_usage off is estimated", func(t *testing.T) {
		rt.Meter().Drain()
		r := post(t, edge+"/v1/chat/completions", "t", `{"model":"q","stream":true,`+msg+`}`)
		if r.status != 200 || strings.Contains(string(oa.Stats().LastBody), "stream_options") {
			t.Fatalf("%d; upstream body %s", r.status, oa.Stats().LastBody)
		}
		n, in, out, est, _ := usageOf(rt, "u")
		if n != 1 || est != 1 || in == 0 || out == 0 {
			t.Fatalf("metered %d requests, %d in, %d out, %d estimated", n, in, out, est)
		}
	})

	t.Run("cost at the backend's price", func(t *testing.T) {
		rt.Meter().Drain()
		r := post(t, edge+"/v1/chat/completions", "t", `{"model":"o",`+msg+`}`)
		in, out := reportedUsage(t, r.body)
		_, _, _, _, cost := usageOf(rt, "u")
		if want := in*2 + out*8; cost != want {
			t.Fatalf("cost %d micro-USD, want %d (2 and 8 USD per million)", cost, want)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		m := get(t, edge+"/metrics", nil).body
		for _, want := range []string{`berry_tokens_total{model="o",backend="oa/gpt-up",type="input"}`, `berry_cost_usd_total{model="o",backend="oa/gpt-up"}`} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

func TestKeyLimits(t *testing.T) {
	oa := startSim(t, "oa", upstreamsim.Options{})
	doc := fmt.Sprintf(`
[providers.oa]
name = "oa"
base_url = %q
models = ["gpt-up"]
[models.o]
name = "o"
[[models.o.backends]]
provider = "oa"
model = "gpt-up"
price = { input_per_mtok = 1000000.0, output_per_mtok = 1000000.0 }
[users.r]
name = "r"
token = "r"
rate_limit = { requests_per_minute = 3 }
[users.tok]
name = "tok"
token = "tok"
rate_limit = { tokens_per_minute = 12 }
[users.b]
name = "b"
token = "b"
budget = { usd_per_day = 12.0 }
`, oa.URL())
	edge, _ := edgeFor(t, doc)
	body := `{"model":"o","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	for _, tt := range []struct {
		token    string
		admitted int
		code     string
	}{
		{"r", 3, "rate_limit_exceeded"},
		// 11 tokens reserved (6 estimated in, max_tokens 5), 5 used each: admitted
		// while credit is left (7, then 2), so the third ends at 15 of 12 — within
		// one request of the limit — and the fourth finds none.
		{"tok", 3, "rate_limit_exceeded"},
		{"b", 3, "insufficient_quota"}, // the same at a dollar a token
	} {
		t.Run(tt.token, func(t *testing.T) {
			ok := 0
			var last result
			for range 6 {
				last = post(t, edge+"/v1/chat/completions", tt.token, body)
				if last.status == 200 {
					ok++
				}
			}
			_, _, code := openAIError(t, last.body)
			if ok != tt.admitted || last.status != 429 || code != tt.code || last.header.Get("Retry-After") == "" {
				t.Fatalf("%d admitted; last %d %s %v", ok, last.status, last.body, last.header)
			}
		})
	}
	t.Run("Anthropic-shaped on /v1/messages", func(t *testing.T) {
		r := postWith(t, edge+"/v1/messages", `{"model":"o","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
			map[string]string{"Authorization": "Bearer r", "Anthropic-Version": "2023-06-01"})
		if typ, _ := anthropicError(t, r.body); r.status != 429 || typ != "rate_limit_error" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

// An upstream whose usage is malformed: the client gets its answer, the meter an
// estimate marked as such.
func TestMalformedUsageIsEstimated(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	answer := `{"id":"x","object":"chat.completion","model":"up","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}],"usage":{"prompt_tokens":"many","completion_tokens":-2}}`
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(answer)
	}}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	rt := runtimeFor(t, configTOML("failover", "", backendSpec{id: "a", url: "http://" + lis.Addr().String() + "/v1"}))
	edge := serveHandler(t, newHandler(rt, Options{}))
	r := post(t, edge+"/v1/chat/completions", "t", chatBody)
	if r.status != 200 || r.body != answer {
		t.Fatalf("%d %s", r.status, r.body)
	}
	n, in, out, est, _ := usageOf(rt, "u")
	if n != 1 || est != 1 || in == 0 || out == 0 {
		t.Fatalf("metered %d requests, %d in, %d out, %d estimated", n, in, out, est)
	}
}
