package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/status"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

func TestBadInput(t *testing.T) {
	sim := startSim(t, "a", upstreamsim.Options{})
	doc := configTOML("weighted_random", "max_request_body_bytes = 2000",
		backendSpec{id: "a", url: sim.URL(), bextra: `tags = ["premium"]`}) + `
[models.other]
name = "other"
[[models.other.backends]]
provider = "a"
model = "x"
[users.limited]
name = "limited"
token = "lim"
allowed_models = ["other"]
[users.tagged]
name = "tagged"
token = "tag"
tags = ["basic"]
[users.off]
name = "off"
token = "off"
enabled = false
[users.slow]
name = "slow"
token = "slow"
rate_limit = { requests_per_minute = 2 }
`
	edge, _ := edgeFor(t, doc)
	chat := edge + "/v1/chat/completions"
	tests := []struct {
		name   string
		method string
		url    string
		token  string
		body   string
		status int
		code   string
	}{
		{"malformed json", "POST", chat, "t", `{"model":`, 400, "invalid_json"},
		{"not an object", "POST", chat, "t", `["m"]`, 400, "invalid_json"},
		{"missing model", "POST", chat, "t", `{"messages":[]}`, 400, "missing_model"},
		{"model not a string", "POST", chat, "t", `{"model":1}`, 400, "invalid_json"},
		{"stream not a bool", "POST", chat, "t", `{"model":"m","stream":"yes"}`, 400, "invalid_json"},
		{"no key", "POST", chat, "", chatBody, 401, "missing_api_key"},
		{"wrong key", "POST", chat, "nope", chatBody, 401, "invalid_api_key"},
		{"disabled key", "POST", chat, "off", chatBody, 401, "invalid_api_key"},
		{"model not allowed", "POST", chat, "lim", chatBody, 403, "model_not_allowed"},
		{"unknown model", "POST", chat, "t", `{"model":"nope"}`, 404, "model_not_found"},
		{"wrong method", "GET", chat, "t", "", 405, "method_not_allowed"},
		{"too large for settings", "POST", chat, "t", `{"model":"m","pad":"` + strings.Repeat("x", 3000) + `"}`, 413, "request_too_large"},
		{"unknown forced backend", "POST", chat, "t", `{"model":"m","backend":"zzz"}`, 400, "invalid_backend"},
		{"forced backend hidden by tags", "POST", chat, "tag", `{"model":"m","backend":"a"}`, 400, "backend_not_allowed"},
		{"forced backend not a string", "POST", chat, "t", `{"model":"m","backend":3}`, 400, "invalid_json"},
		{"duplicate model", "POST", chat, "t", `{"model":"evil","model":"m"}`, 400, "invalid_json"},
		{"escaped duplicate model", "POST", chat, "t", `{"mod\u0065l":"evil","model":"m"}`, 400, "invalid_json"},
		{"duplicate backend", "POST", chat, "t", `{"model":"m","backend":"a","backend":"b"}`, 400, "invalid_json"},
		{"stream in another case", "POST", chat, "t", `{"model":"m","Stream":true}`, 400, "invalid_json"},
		{"unknown endpoint", "POST", edge + "/v1/nope", "t", chatBody, 404, "not_found"},
		{"models wrong method", "POST", edge + "/v1/models", "t", "", 405, "method_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b strings.Builder
			_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b.String())
			}
			if _, _, code := openAIError(t, b.String()); code != tc.code {
				t.Fatalf("code %q, want %q", code, tc.code)
			}
		})
	}

	t.Run("too large for the server", func(t *testing.T) {
		// Announce a body over the server's limit and send none of it: the answer must
		// come from the Content-Length alone (a client still writing the body could
		// otherwise see its connection closed before it reads the 413).
		c, err := net.Dial("tcp", strings.TrimPrefix(edge, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.Write([]byte("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n" +
			"Content-Type: application/json\r\nContent-Length: 4194304\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		if resp.StatusCode != 413 {
			t.Fatalf("status %d: %s", resp.StatusCode, b.String())
		}
		if _, _, code := openAIError(t, b.String()); code != "request_too_large" {
			t.Fatalf("code %q", code)
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		for i := range 2 {
			if r := post(t, chat, "slow", chatBody); r.status != 200 {
				t.Fatalf("request %d within the limit: %d %s", i, r.status, r.body)
			}
		}
		// Rejections consume no quota, and each carries Retry-After.
		for range 3 {
			r := post(t, chat, "slow", chatBody)
			if r.status != 429 || r.header.Get("Retry-After") == "" {
				t.Fatalf("over the limit: %d Retry-After=%q %s", r.status, r.header.Get("Retry-After"), r.body)
			}
			openAIError(t, r.body)
		}
		// Other keys are not affected.
		if r := post(t, chat, "t", chatBody); r.status != 200 {
			t.Fatalf("another key: %d", r.status)
		}
	})
	t.Run("forced backend is used and removed", func(t *testing.T) {
		r := post(t, chat, "t", `{"model":"m","backend":"a","messages":[]}`)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if got := string(sim.Stats().LastBody); strings.Contains(got, "backend") || !strings.Contains(got, `"up-a"`) {
			t.Fatalf("upstream body %s: want the model rewritten and backend removed", got)
		}
	})
}

func TestCORSAndProbes(t *testing.T) {
	sim := startSim(t, "a", upstreamsim.Options{})
	edge, _ := edgeFor(t, configTOML("weighted_random", "", backendSpec{id: "a", url: sim.URL()}))

	req, _ := http.NewRequest(http.MethodOptions, edge+"/v1/chat/completions", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	for _, r := range []result{post(t, edge+"/v1/chat/completions", "t", chatBody), post(t, edge+"/v1/chat/completions", "", chatBody)} {
		if r.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("status %d answer lacks CORS header", r.status)
		}
	}
	for path, want := range map[string]string{
		"/healthz": `"alive"`, "/readyz": `"config_version":1`, "/health": `"status":"ok"`,
	} {
		resp, err := testClient.Get(edge + path)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(b.String(), want) {
			t.Errorf("%s: %d %s, want 200 containing %s", path, resp.StatusCode, b.String(), want)
		}
		if strings.Contains(b.String(), "k-a") {
			t.Errorf("%s leaks the provider key: %s", path, b.String())
		}
	}
}

func TestMetricsExposition(t *testing.T) {
	sim := startSim(t, "a", upstreamsim.Options{})
	edge, _ := edgeFor(t, configTOML("weighted_random", "", backendSpec{id: "a", url: sim.URL()}))
	post(t, edge+"/v1/chat/completions", "t", chatBody)
	post(t, edge+"/v1/chat/completions", "t", streamBody)
	resp, err := testClient.Get(edge + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	resp.Body.Close()
	got := b.String()
	for _, want := range []string{
		"berry_config_version 1\n",
		`berry_requests_total{model="m",class="2xx"} 2`,
		`berry_upstream_requests_total{model="m",backend="a/up-a",class="2xx"} 2`,
		`berry_breaker_state{backend="a/up-a"} 0`,
		`berry_upstream_latency_seconds_count{backend="a/up-a"} 2`,
		`berry_upstream_ttft_seconds_count{backend="a/up-a"} 1`,
		"berry_in_flight_requests 0",
		`berry_failovers_total{model="m"} 0`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(got, "k-a") || strings.Contains(got, `"t"`) {
		t.Error("metrics contain a secret")
	}

	// With a token configured, /metrics needs it even from loopback.
	rt := runtimeFor(t, configTOML("weighted_random", "", backendSpec{id: "a", url: sim.URL()}))
	h := New(rt, &status.Pages{Runtime: rt, MetricsToken: "scrape"}, Options{})
	e2 := serveHandler(t, h)
	for tok, want := range map[string]int{"": 401, "wrong": 401, "scrape": 200} {
		req, _ := http.NewRequest(http.MethodGet, e2+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("token %q: %d, want %d", tok, resp.StatusCode, want)
		}
	}
}

func TestNonStreamFailover(t *testing.T) {
	type want struct {
		status int
		code   string // for gateway-made errors
	}
	dead := func() string { // a loopback port nobody listens on
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr + "/v1"
	}
	tests := []struct {
		name     string
		settings string
		a, b     upstreamsim.Options
		aURL     string
		want     want
		served   string // which sim answered, "" when none
	}{
		{"5xx fails over", "max_retries = 2", upstreamsim.Options{FailStatus: 500}, upstreamsim.Options{}, "", want{200, ""}, "b"},
		{"429 fails over", "max_retries = 2", upstreamsim.Options{FailStatus: 429}, upstreamsim.Options{}, "", want{200, ""}, "b"},
		{"refused fails over", "max_retries = 2", upstreamsim.Options{}, upstreamsim.Options{}, "dead", want{200, ""}, "b"},
		{"400 is the answer", "max_retries = 2", upstreamsim.Options{FailStatus: 400}, upstreamsim.Options{}, "", want{400, ""}, ""},
		{"all fail: last real status", "max_retries = 2", upstreamsim.Options{FailStatus: 500}, upstreamsim.Options{FailStatus: 503}, "", want{503, ""}, ""},
		{"budget of one", "max_retries = 1", upstreamsim.Options{FailStatus: 500}, upstreamsim.Options{}, "", want{500, ""}, ""},
		{"all refused: 502", "max_retries = 2", upstreamsim.Options{}, upstreamsim.Options{}, "dead-both", want{502, "upstream_unreachable"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := startSim(t, "a", tc.a)
			b := startSim(t, "b", tc.b)
			aURL, bURL := a.URL(), b.URL()
			switch tc.aURL {
			case "dead":
				aURL = dead()
			case "dead-both":
				aURL, bURL = dead(), dead()
			}
			edge, _ := edgeFor(t, configTOML("failover", tc.settings,
				backendSpec{id: "a", url: aURL, priority: 1}, backendSpec{id: "b", url: bURL, priority: 2}))
			r := post(t, edge+"/v1/chat/completions", "t", chatBody)
			if r.status != tc.want.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.want.status, r.body)
			}
			if r.status != 200 {
				_, _, code := openAIError(t, r.body)
				if tc.want.code != "" && code != tc.want.code {
					t.Fatalf("code %q, want %q", code, tc.want.code)
				}
			} else if !strings.Contains(r.body, "sim "+tc.served) && !strings.Contains(r.body, tc.served) {
				t.Fatalf("answer not from %s: %s", tc.served, r.body)
			}
			if tc.served == "b" && b.Stats().ChatRequests != 1 {
				t.Fatalf("b saw %d requests, want 1", b.Stats().ChatRequests)
			}
		})
	}
}

func TestTimeoutIs504(t *testing.T) {
	slow := startSim(t, "slow", upstreamsim.Options{Latency: 5 * time.Second})
	edge, _ := edgeFor(t, configTOML("failover", "max_retries = 1",
		backendSpec{id: "a", url: slow.URL(), extra: "timeout_seconds = 1"}))
	r := post(t, edge+"/v1/chat/completions", "t", chatBody)
	if r.status != 504 {
		t.Fatalf("status %d, want 504: %s", r.status, r.body)
	}
	openAIError(t, r.body)
}

func TestRetryAfterHoldsBackend(t *testing.T) {
	var hits atomic.Int32
	limited := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(429)
		_, _ = w.Write([]byte(`{"error":{"message":"slow down","type":"rate_limit","code":null}}`))
	})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = limited.Serve(lis) }()
	t.Cleanup(func() { _ = limited.Close() })
	b := startSim(t, "b", upstreamsim.Options{})
	edge, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
		backendSpec{id: "a", url: "http://" + lis.Addr().String() + "/v1", priority: 1},
		backendSpec{id: "b", url: b.URL(), priority: 2}))
	for range 5 {
		if r := post(t, edge+"/v1/chat/completions", "t", chatBody); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("the 429 backend was tried %d times; its Retry-After should hold it out after the first", hits.Load())
	}
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	a := startSim(t, "a", upstreamsim.Options{FailStatus: 500})
	b := startSim(t, "b", upstreamsim.Options{})
	edge, _ := edgeFor(t, configTOML("failover",
		"max_retries = 2\ncircuit_breaker_failure_threshold = 2\ncircuit_breaker_timeout_seconds = 1",
		backendSpec{id: "a", url: a.URL(), priority: 1}, backendSpec{id: "b", url: b.URL(), priority: 2}))
	start := time.Now()
	for range 6 {
		if r := post(t, edge+"/v1/chat/completions", "t", chatBody); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	// Two failures opened the breaker; requests within its timeout skip a. Each time the
	// 1s timeout passed during the loop (a slow machine) allows one half-open trial.
	trials := int64(time.Since(start) / time.Second)
	if n := a.Stats().ChatRequests; n < 2 || n > 2+trials {
		t.Fatalf("a saw %d requests, want 2 (+%d trials): breaker open after 2 failures", n, trials)
	}
	a.SetOptions(upstreamsim.Options{Name: "a"})
	a.ResetStats()
	eventually(t, "a rejoins after the breaker timeout", func() bool {
		r := post(t, edge+"/v1/chat/completions", "t", chatBody)
		return r.status == 200 && a.Stats().ChatRequests > 0
	})
	// Closed again: the primary takes all traffic.
	b.ResetStats()
	for range 5 {
		post(t, edge+"/v1/chat/completions", "t", chatBody)
	}
	if n := b.Stats().ChatRequests; n != 0 {
		t.Fatalf("b still got %d requests after a recovered", n)
	}
}

func TestStreamFailover(t *testing.T) {
	t.Run("fails before first content: served by another backend", func(t *testing.T) {
		a := startSim(t, "a", upstreamsim.Options{FailAfterChunks: 1}) // role chunk, then dies
		b := startSim(t, "b", upstreamsim.Options{})
		edge, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
			backendSpec{id: "a", url: a.URL(), priority: 1}, backendSpec{id: "b", url: b.URL(), priority: 2}))
		r := post(t, edge+"/v1/chat/completions", "t", streamBody)
		if r.status != 200 || !strings.Contains(r.body, "data: [DONE]") || strings.Contains(r.body, `"error"`) {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if a.Stats().ChatRequests != 1 || b.Stats().ChatRequests != 1 {
			t.Fatalf("a=%d b=%d attempts, want 1 each", a.Stats().ChatRequests, b.Stats().ChatRequests)
		}
		if strings.Count(r.body, `"role"`) != 1 {
			t.Fatalf("the failed attempt's events leaked into the answer: %s", r.body)
		}
	})
	t.Run("error event before content: served by another backend", func(t *testing.T) {
		up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" +
				"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":null}}\n\n"))
		})}
		lis, _ := net.Listen("tcp", "127.0.0.1:0")
		go func() { _ = up.Serve(lis) }()
		t.Cleanup(func() { _ = up.Close() })
		b := startSim(t, "b", upstreamsim.Options{})
		edge, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
			backendSpec{id: "a", url: "http://" + lis.Addr().String() + "/v1", priority: 1},
			backendSpec{id: "b", url: b.URL(), priority: 2}))
		r := post(t, edge+"/v1/chat/completions", "t", streamBody)
		if r.status != 200 || !strings.Contains(r.body, "data: [DONE]") || strings.Contains(r.body, "overloaded") {
			t.Fatalf("%d %s", r.status, r.body)
		}
		// With no other backend, the client gets a real error status, not a 200.
		edge1, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
			backendSpec{id: "a", url: "http://" + lis.Addr().String() + "/v1"}))
		r = post(t, edge1+"/v1/chat/completions", "t", streamBody)
		if r.status != 502 {
			t.Fatalf("only backend errs before content: %d %s, want 502", r.status, r.body)
		}
		openAIError(t, r.body)
	})
	// One failover policy for statuses and stream translators: an Anthropic stream
	// whose provider account is refused (authentication_error, permission_error, which
	// the translator reports as 401 and 403) moves on like an HTTP 401/403 does.
	for _, typ := range []string{"authentication_error", "permission_error"} {
		t.Run("translated "+typ+" before content: served by another backend", func(t *testing.T) {
			up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = w.Write([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"" + typ +
					"\",\"message\":\"refused\"}}\n\n"))
			})}
			lis, _ := net.Listen("tcp", "127.0.0.1:0")
			go func() { _ = up.Serve(lis) }()
			t.Cleanup(func() { _ = up.Close() })
			b := startSim(t, "b", upstreamsim.Options{})
			edge, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
				backendSpec{id: "a", url: "http://" + lis.Addr().String(), priority: 1, extra: `backend_type = "anthropic"`},
				backendSpec{id: "b", url: b.URL(), priority: 2}))
			r := post(t, edge+"/v1/chat/completions", "t", streamBody)
			if r.status != 200 || !strings.Contains(r.body, "data: [DONE]") || b.Stats().ChatRequests != 1 {
				t.Fatalf("%d b=%d %s", r.status, b.Stats().ChatRequests, r.body)
			}
		})
	}
	t.Run("fails after first content: SSE error event, no clean end", func(t *testing.T) {
		a := startSim(t, "a", upstreamsim.Options{FailAfterChunks: 3, Chunks: 6})
		b := startSim(t, "b", upstreamsim.Options{})
		edge, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
			backendSpec{id: "a", url: a.URL(), priority: 1}, backendSpec{id: "b", url: b.URL(), priority: 2}))
		r := post(t, edge+"/v1/chat/completions", "t", streamBody)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if strings.Contains(r.body, "[DONE]") {
			t.Fatalf("a broken stream ended cleanly: %s", r.body)
		}
		events := strings.Split(strings.TrimSpace(r.body), "\n\n")
		lastEv := strings.TrimPrefix(strings.TrimSpace(events[len(events)-1]), "data: ")
		if _, typ, code := openAIError(t, lastEv); typ != typeUpstream || code != "upstream_stream_error" {
			t.Fatalf("last event %q", lastEv)
		}
		if b.Stats().ChatRequests != 0 {
			t.Fatal("failed over after content had been sent")
		}
	})
	t.Run("first content timeout fails over", func(t *testing.T) {
		a := startSim(t, "a", upstreamsim.Options{ChunkDelay: 3 * time.Second})
		b := startSim(t, "b", upstreamsim.Options{})
		edge, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
			backendSpec{id: "a", url: a.URL(), priority: 1, extra: "timeout_seconds = 1"},
			backendSpec{id: "b", url: b.URL(), priority: 2}))
		r := post(t, edge+"/v1/chat/completions", "t", streamBody)
		if r.status != 200 || !strings.Contains(r.body, "[DONE]") || b.Stats().ChatRequests != 1 {
			t.Fatalf("%d b=%d %s", r.status, b.Stats().ChatRequests, r.body)
		}
	})
	t.Run("upstream that ignores stream answers JSON as is", func(t *testing.T) {
		up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"object":"chat.completion","choices":[{"message":{"role":"assistant","content":"whole"}}]}`))
		})}
		lis, _ := net.Listen("tcp", "127.0.0.1:0")
		go func() { _ = up.Serve(lis) }()
		t.Cleanup(func() { _ = up.Close() })
		edge, _ := edgeFor(t, configTOML("failover", "", backendSpec{id: "a", url: "http://" + lis.Addr().String() + "/v1"}))
		r := post(t, edge+"/v1/chat/completions", "t", streamBody)
		if r.status != 200 || !strings.Contains(r.body, `"whole"`) || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("%d %v %s", r.status, r.header, r.body)
		}
	})
	t.Run("stall after content hits the idle timeout", func(t *testing.T) {
		release := make(chan struct{})
		up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"part\"}}]}\n\n"))
			w.(http.Flusher).Flush()
			select { // stalls far past the 1s timeout; released at cleanup
			case <-release:
			case <-time.After(20 * time.Second):
			}
		})}
		lis, _ := net.Listen("tcp", "127.0.0.1:0")
		go func() { _ = up.Serve(lis) }()
		t.Cleanup(func() { close(release); _ = up.Close() })
		edge, _ := edgeFor(t, configTOML("failover", "",
			backendSpec{id: "a", url: "http://" + lis.Addr().String() + "/v1", extra: "timeout_seconds = 1"}))
		r := post(t, edge+"/v1/chat/completions", "t", streamBody)
		if r.status != 200 || !strings.Contains(r.body, "part") || strings.Contains(r.body, "[DONE]") {
			t.Fatalf("%d %s", r.status, r.body)
		}
		events := strings.Split(strings.TrimSpace(r.body), "\n\n")
		openAIError(t, strings.TrimPrefix(strings.TrimSpace(events[len(events)-1]), "data: "))
	})
	t.Run("long stream is not cut by the request timeout", func(t *testing.T) {
		// 10 chunks 300ms apart is 3s in all, over a 2s timeout; each gap is well within it.
		a := startSim(t, "a", upstreamsim.Options{Chunks: 10, ChunkDelay: 300 * time.Millisecond})
		edge, _ := edgeFor(t, configTOML("failover", "max_retries = 1",
			backendSpec{id: "a", url: a.URL(), extra: "timeout_seconds = 2"}))
		r := post(t, edge+"/v1/chat/completions", "t", streamBody)
		if r.status != 200 || !strings.Contains(r.body, "[DONE]") || strings.Contains(r.body, `"error"`) {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

func TestLeastLatencyAvoidsSlowBackend(t *testing.T) {
	tests := []struct {
		name string
		slow upstreamsim.Options
		body string
	}{
		// Far slower than any hiccup of the fast one under -race on a loaded machine.
		{"buffered", upstreamsim.Options{Latency: 300 * time.Millisecond}, chatBody},
		// Streams rank by time to first token: the slow one starts its chunks late.
		{"stream", upstreamsim.Options{ChunkDelay: 300 * time.Millisecond}, streamBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			slow := startSim(t, "slow", tc.slow)
			fast := startSim(t, "fast", upstreamsim.Options{})
			edge, _ := edgeFor(t, configTOML("least_latency", "max_retries = 1",
				backendSpec{id: "slow", url: slow.URL()}, backendSpec{id: "fast", url: fast.URL()}))
			const n = 40
			for range n {
				if r := post(t, edge+"/v1/chat/completions", "t", tc.body); r.status != 200 {
					t.Fatalf("%d %s", r.status, r.body)
				}
			}
			// The slow backend is explored, then loses to the fast one.
			if got := slow.Stats().ChatRequests; got > n/10 {
				t.Fatalf("slow backend got %d of %d requests", got, n)
			}
			if got := slow.Stats().ChatRequests; got == 0 {
				t.Fatal("the slow backend was never explored")
			}
		})
	}
}

func TestBackendDiesMidLoad(t *testing.T) {
	sims := []*upstreamsim.Server{
		startSim(t, "a", upstreamsim.Options{}), startSim(t, "b", upstreamsim.Options{}), startSim(t, "c", upstreamsim.Options{}),
	}
	edge, _ := edgeFor(t, configTOML("round_robin", "max_retries = 3\ncircuit_breaker_failure_threshold = 3",
		backendSpec{id: "a", url: sims[0].URL()}, backendSpec{id: "b", url: sims[1].URL()}, backendSpec{id: "c", url: sims[2].URL()}))
	const workers, per = 6, 60
	var done atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan string, workers*per)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				body := chatBody
				if (w+i)%2 == 1 {
					body = streamBody
				}
				r := post(t, edge+"/v1/chat/completions", "t", body)
				if r.status != 200 || strings.Contains(r.body, `"error"`) {
					errs <- r.body
				}
				done.Add(1)
			}
		}()
	}
	eventually(t, "load under way", func() bool { return done.Load() >= workers*per/3 })
	_ = sims[1].Close()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a request failed although two backends were up: %s", e)
	}
	if sims[0].Stats().ChatRequests == 0 || sims[2].Stats().ChatRequests == 0 {
		t.Fatal("round_robin did not spread load")
	}
}

func TestNoBackendAvailable(t *testing.T) {
	a := startSim(t, "a", upstreamsim.Options{FailStatus: 500})
	edge, _ := edgeFor(t, configTOML("failover", "max_retries = 1\ncircuit_breaker_failure_threshold = 1\ncircuit_breaker_timeout_seconds = 30",
		backendSpec{id: "a", url: a.URL()}))
	if r := post(t, edge+"/v1/chat/completions", "t", chatBody); r.status != 500 {
		t.Fatalf("first: %d", r.status)
	}
	r := post(t, edge+"/v1/chat/completions", "t", chatBody)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("breaker open: %d Retry-After=%q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if msg, _, code := openAIError(t, r.body); code != "no_backend_available" || !strings.Contains(msg, `"m"`) {
		t.Fatalf("error %q %q does not name the model", code, msg)
	}
}

func TestClientDisconnectCancelsUpstreamStream(t *testing.T) {
	cancelled := make(chan struct{})
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 200; i++ { // 20s of chunks unless the edge hangs up
			if _, err := w.Write([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n")); err != nil {
				break
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				close(cancelled)
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = up.Serve(lis) }()
	t.Cleanup(func() { _ = up.Close() })
	edge, _ := edgeFor(t, configTOML("failover", "", backendSpec{id: "a", url: "http://" + lis.Addr().String() + "/v1"}))

	req, _ := http.NewRequest(http.MethodPost, edge+"/v1/chat/completions", strings.NewReader(streamBody))
	req.Header.Set("Authorization", "Bearer t")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(resp.Body).ReadString('\n'); !strings.Contains(line, "x") {
		t.Fatalf("first line %q", line)
	}
	resp.Body.Close() // hangs up mid-stream
	select {
	case <-cancelled:
	case <-time.After(15 * time.Second):
		t.Fatal("the upstream request was not cancelled after the client went away")
	}
}

func TestStreamIdleTimeout(t *testing.T) {
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"))
		w.(http.Flusher).Flush()
		select { // a pause between chunks
		case <-r.Context().Done():
			return
		case <-time.After(1500 * time.Millisecond):
		}
		_, _ = w.Write([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\ndata: [DONE]\n\n"))
	})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = up.Serve(lis) }()
	t.Cleanup(func() { _ = up.Close() })
	doc := configTOML("failover", "", backendSpec{id: "a", url: "http://" + lis.Addr().String() + "/v1", extra: "timeout_seconds = 10"})
	tests := []struct {
		name     string
		idle     time.Duration
		complete bool
	}{
		{"gap within the request timeout", 0, true},
		{"gap over the idle timeout", 300 * time.Millisecond, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandler(runtimeFor(t, doc), Options{StreamIdleTimeout: tc.idle})
			r := post(t, serveHandler(t, h)+"/v1/chat/completions", "t", streamBody)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if got := strings.Contains(r.body, "[DONE]") && !strings.Contains(r.body, `"error"`); got != tc.complete {
				t.Fatalf("completed = %v, want %v: %s", got, tc.complete, r.body)
			}
		})
	}
}
