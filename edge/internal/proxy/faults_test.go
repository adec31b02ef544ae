package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/breaker"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// TestRestartedUpstreamStaysInRotation: after an upstream restarts, the edge's pooled
// keep-alive connections to it are dead. Requests that find one must go out again on
// a fresh connection and must not count against the backend: with a breaker that
// opens at the first failure, every request still succeeds and it stays closed.
func TestRestartedUpstreamStaysInRotation(t *testing.T) {
	for _, body := range []string{chatBody, streamBody} {
		name := "buffered"
		if body == streamBody {
			name = "stream"
		}
		t.Run(name, func(t *testing.T) {
			sim := startSim(t, "a", upstreamsim.Options{})
			addr := sim.Addr()
			edge, h := edgeFor(t, configTOML("failover", "max_retries = 1\ncircuit_breaker_failure_threshold = 1",
				backendSpec{id: "a", url: sim.URL()}))
			// Several connections in the pool: concurrent requests each take one.
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					if r := post(t, edge+"/v1/chat/completions", "t", body); r.status != 200 {
						t.Errorf("before the restart: %d %s", r.status, r.body)
					}
				})
			}
			wg.Wait()
			if err := sim.Close(); err != nil {
				t.Fatal(err)
			}
			restarted := upstreamsim.New(upstreamsim.Options{Name: "a"})
			if err := restarted.Start(addr); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = restarted.Close() })
			for i := range 20 {
				if r := post(t, edge+"/v1/chat/completions", "t", body); r.status != 200 {
					t.Fatalf("request %d after the restart: %d %s", i, r.status, r.body)
				}
			}
			b := h.rt.Table().ModelByName("m").Backends[0]
			if st := b.State.Breaker.State(time.Now()); st != breaker.Closed {
				t.Fatalf("breaker %v after the restart, want closed", st)
			}
			if n := b.Stats.Requests[backends.ClassError].Load(); n != 0 {
				t.Fatalf("%d attempts counted as failed", n)
			}
		})
	}
}

// scripted is an upstream whose answer the request body chooses: "fail" answers 500,
// "slow" answers after delay, "long-stream" streams for delay; anything else answers
// at once.
func scripted(t *testing.T, delay time.Duration) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body := string(b)
		switch {
		case strings.Contains(body, "fail"):
			http.Error(w, `{"error":{"message":"boom","type":"server_error"}}`, http.StatusInternalServerError)
			return
		case strings.Contains(body, "long-stream"):
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"first\"}}]}\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(delay)
			fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
			return
		case strings.Contains(body, "slow"):
			time.Sleep(delay)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"chat.completion","choices":[{"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + lis.Addr().String() + "/v1"
}

func said(word string, stream bool) string {
	return fmt.Sprintf(`{"model":"m","stream":%v,"messages":[{"role":"user","content":%q}]}`, stream, word)
}

// TestLateSuccessDoesNotCloseTheBreaker: a stream admitted while the breaker was
// closed and finishing after it opened must not close it again.
func TestLateSuccessDoesNotCloseTheBreaker(t *testing.T) {
	up := scripted(t, 1500*time.Millisecond)
	edge, h := edgeFor(t, configTOML("failover", "max_retries = 1\ncircuit_breaker_failure_threshold = 1\ncircuit_breaker_timeout_seconds = 60",
		backendSpec{id: "a", url: up}))
	long := make(chan result, 1)
	go func() { long <- post(t, edge+"/v1/chat/completions", "t", said("long-stream", true)) }()
	time.Sleep(300 * time.Millisecond) // the stream is under way
	if r := post(t, edge+"/v1/chat/completions", "t", said("fail", false)); r.status != 500 {
		t.Fatalf("failing request: %d %s", r.status, r.body)
	}
	br := &h.rt.Table().ModelByName("m").Backends[0].State.Breaker
	if st := br.State(time.Now()); st != breaker.Open {
		t.Fatalf("breaker %v after the failure, want open", st)
	}
	if r := <-long; r.status != 200 || !strings.Contains(r.body, "[DONE]") {
		t.Fatalf("long stream: %d %s", r.status, r.body)
	}
	if st := br.State(time.Now()); st != breaker.Open {
		t.Fatalf("breaker %v after the old stream finished, want still open", st)
	}
}

// TestLongRequestTimeoutIsNotTheBackendsFault: a request that runs past its timeout
// while the backend keeps answering others is the request's doing; with nothing else
// answered, the timeout is the backend's.
func TestLongRequestTimeoutIsNotTheBackendsFault(t *testing.T) {
	for _, tc := range []struct {
		name       string
		others     bool
		wantState  breaker.State
		wantClass  backends.Class
		wantMetric string
	}{
		{"backend answers others", true, breaker.Closed, backends.ClassTooLong, `class="too_long"} 1`},
		{"backend answers nothing", false, breaker.Open, backends.ClassError, `class="error"} 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := scripted(t, 3*time.Second)
			edge, h := edgeFor(t, configTOML("failover", "max_retries = 1\ncircuit_breaker_failure_threshold = 1",
				backendSpec{id: "a", url: up, extra: "timeout_seconds = 1"}))
			done := make(chan result, 1)
			go func() { done <- post(t, edge+"/v1/chat/completions", "t", said("slow", false)) }()
			if tc.others {
				for range 3 {
					time.Sleep(150 * time.Millisecond)
					if r := post(t, edge+"/v1/chat/completions", "t", chatBody); r.status != 200 {
						t.Fatalf("short request: %d %s", r.status, r.body)
					}
				}
			}
			if r := <-done; r.status != 504 {
				t.Fatalf("long request: %d %s, want 504", r.status, r.body)
			}
			b := h.rt.Table().ModelByName("m").Backends[0]
			if st := b.State.Breaker.State(time.Now()); st != tc.wantState {
				t.Fatalf("breaker %v, want %v", st, tc.wantState)
			}
			if n := b.Stats.Requests[tc.wantClass].Load(); n != 1 {
				t.Fatalf("%d attempts of class %v, want 1", n, tc.wantClass)
			}
			resp, err := testClient.Get(edge + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			m, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(m), `berry_upstream_requests_total{model="m",backend="a/up-a",`+tc.wantMetric) {
				t.Fatalf("metrics lack the attempt as %s", tc.wantMetric)
			}
		})
	}
}

// upstreamSSE serves body as an SSE stream for every request (OpenAI's paths and
// Anthropic's /v1/messages alike) and then ends the response normally.
func upstreamSSE(t *testing.T, body string) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, body)
	})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + lis.Addr().String()
}

// TestTruncatedStreamsEndWithAnError: an upstream whose response ends normally but
// without the event that ends its stream was cut short; the client sees an error
// event, not a clean end. Client-facing messages name the backend, not addresses.
func TestTruncatedStreamsEndWithAnError(t *testing.T) {
	const (
		oaContent = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"part\"}}]}\n\n"
		oaDone    = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
		oaError   = "data: {\"error\":{\"message\":\"upstream gave up\",\"type\":\"server_error\"}}\n\n"
		anStart   = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n" +
			"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"part\"}}\n\n"
		anStop = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
			"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n" +
			"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	)
	tests := []struct {
		name      string
		upstream  string
		anthropic bool // the backend is an Anthropic one (the path /v1/messages)
		messages  bool // the client calls /v1/messages
		wantError bool
	}{
		{"openai passthrough with [DONE]", oaContent + oaDone, false, false, false},
		{"openai passthrough without [DONE]", oaContent, false, false, true},
		{"openai passthrough ending in its own error event", oaContent + oaError, false, false, false},
		{"anthropic translated with message_stop", anStart + anStop, true, false, false},
		{"anthropic translated without message_stop", anStart, true, false, true},
		{"anthropic native with message_stop", anStart + anStop, true, true, false},
		{"anthropic native without message_stop", anStart, true, true, true},
		{"openai translated to messages without [DONE]", oaContent, false, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, extra := upstreamSSE(t, tc.upstream)+"/v1", ""
			if tc.anthropic {
				extra = `backend_type = "anthropic"`
			}
			edge, _ := edgeFor(t, configTOML("failover", "", backendSpec{id: "a", url: url, extra: extra}))
			var r result
			if tc.messages {
				r = postMessages(t, edge, map[string]string{"x-api-key": "t"}, messagesStreamBody)
			} else {
				r = post(t, edge+"/v1/chat/completions", "t", streamBody)
			}
			if r.status != 200 || !strings.Contains(r.body, "part") {
				t.Fatalf("%d %s", r.status, r.body)
			}
			events := strings.Split(strings.TrimSpace(r.body), "\n\n")
			last := strings.TrimSpace(events[len(events)-1])
			gotError := strings.Contains(last, "upstream_stream_truncated") || strings.Contains(last, "ended before its last event")
			if gotError != tc.wantError {
				t.Fatalf("ends with the gateway's error event: %v, want %v:\n%s", gotError, tc.wantError, r.body)
			}
			if tc.wantError {
				if strings.Contains(r.body, "[DONE]") || strings.Contains(r.body, "message_stop") {
					t.Fatalf("a cut stream looks complete:\n%s", r.body)
				}
				if !strings.Contains(last, `a/up-a`) || addressPattern.MatchString(last) {
					t.Fatalf("the error event must name the backend and no address: %s", last)
				}
			}
			errorEvents := 0
			for _, ev := range events {
				ev = strings.TrimSpace(ev)
				if strings.HasPrefix(ev, "event: error") || strings.HasPrefix(ev, `data: {"error"`) {
					errorEvents++
				}
			}
			if errorEvents > 1 {
				t.Fatalf("%d error events:\n%s", errorEvents, r.body)
			}
		})
	}
}

var addressPattern = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

// TestStalledStreamErrorNamesNoAddress: a stream that stalls after content ends with
// an error event that says what happened, not which socket it happened on.
func TestStalledStreamErrorNamesNoAddress(t *testing.T) {
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"part\"}}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})}
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { close(release); _ = srv.Close() })
	edge, _ := edgeFor(t, configTOML("failover", "",
		backendSpec{id: "a", url: "http://" + lis.Addr().String() + "/v1", extra: "timeout_seconds = 1"}))
	r := post(t, edge+"/v1/chat/completions", "t", streamBody)
	events := strings.Split(strings.TrimSpace(r.body), "\n\n")
	last := strings.TrimSpace(events[len(events)-1])
	if !strings.Contains(last, "a/up-a") || !strings.Contains(last, "timeout") || addressPattern.MatchString(last) {
		t.Fatalf("last event %s", last)
	}
}

// TestClientThatStopsReadingLosesItsStream: a client that reads the headers and then
// nothing holds neither the stream nor the backend's in-flight count past the client
// write timeout.
func TestClientThatStopsReadingLosesItsStream(t *testing.T) {
	cancelled := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := "data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("x", 4000) + "\"}}]}\n\n"
		for {
			if _, err := io.WriteString(w, chunk); err != nil {
				close(cancelled)
				return
			}
			w.(http.Flusher).Flush()
		}
	})}
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	rt := runtimeFor(t, configTOML("failover", "", backendSpec{id: "a", url: "http://" + lis.Addr().String() + "/v1"}))
	edge := serveHandler(t, newHandler(rt, Options{ClientWriteTimeout: time.Second}))

	conn, err := net.Dial("tcp", strings.TrimPrefix(edge, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer t\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(streamBody), streamBody)
	// Never read: the edge's writes fill the socket buffers and then block.
	select {
	case <-cancelled:
	case <-time.After(20 * time.Second):
		t.Fatal("the upstream stream was still being read 20s after the client stopped reading")
	}
	st := rt.Table().ModelByName("m").Backends[0].State
	deadline := time.Now().Add(10 * time.Second)
	for st.InFlight.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("in flight %d after the stream was dropped", st.InFlight.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUpstreamReadsAreBounded: a buffered answer over the limit and a stream event
// that never ends are refused with a clear error instead of growing a buffer.
func TestUpstreamReadsAreBounded(t *testing.T) {
	t.Run("buffered answer over the limit", func(t *testing.T) {
		big := `{"object":"chat.completion","choices":[{"message":{"role":"assistant","content":"` + strings.Repeat("x", 5000) + `"}}]}`
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, big)
		})}
		lis, _ := net.Listen("tcp", "127.0.0.1:0")
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(func() { _ = srv.Close() })
		rt := runtimeFor(t, configTOML("failover", "", backendSpec{id: "a", url: "http://" + lis.Addr().String() + "/v1"}))
		edge := serveHandler(t, newHandler(rt, Options{MaxResponseBody: 1000}))
		r := post(t, edge+"/v1/chat/completions", "t", chatBody)
		if _, _, code := openAIError(t, r.body); r.status != 502 || code != "upstream_response_too_large" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("translated stream event that never ends", func(t *testing.T) {
		start := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n" +
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"part\"}}\n\n"
		url := upstreamSSE(t, start+"event: content_block_delta\ndata: "+strings.Repeat("x", 3<<20))
		edge, _ := edgeFor(t, configTOML("failover", "", backendSpec{id: "a", url: url, extra: `backend_type = "anthropic"`}))
		r := post(t, edge+"/v1/chat/completions", "t", streamBody)
		events := strings.Split(strings.TrimSpace(r.body), "\n\n")
		last := strings.TrimSpace(events[len(events)-1])
		if r.status != 200 || !strings.Contains(r.body, "part") || !strings.Contains(last, "over 1 MiB") {
			t.Fatalf("%d, last event %.300s", r.status, last)
		}
	})
}

// fixedUpstream answers every request with status, headers and body.
func fixedUpstream(t *testing.T, status int, headers map[string]string, body string) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + lis.Addr().String() + "/v1"
}

// TestUpstreamAuthFailureIsNotTheClients: a provider refusing the gateway's own
// credentials reaches the client as a 502 naming the backend, not as the client's
// 401 with the provider's message (which may quote part of the provider key).
func TestUpstreamAuthFailureIsNotTheClients(t *testing.T) {
	for _, status := range []int{401, 403} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			up := fixedUpstream(t, status, nil, `{"error":{"message":"Incorrect API key provided: sk-proj-****wxyz","type":"invalid_request_error","code":"invalid_api_key"}}`)
			edge, _ := edgeFor(t, configTOML("failover", "max_retries = 2", backendSpec{id: "a", url: up}))
			r := post(t, edge+"/v1/chat/completions", "t", chatBody)
			_, _, code := openAIError(t, r.body)
			if r.status != 502 || code != "upstream_auth_failed" || !strings.Contains(r.body, "a/up-a") || strings.Contains(r.body, "wxyz") {
				t.Fatalf("%d %s", r.status, r.body)
			}
			r = postMessages(t, edge, map[string]string{"x-api-key": "t"}, messagesStreamBody)
			if typ, _ := anthropicError(t, r.body); r.status != 502 || typ != "api_error" || strings.Contains(r.body, "wxyz") {
				t.Fatalf("/v1/messages: %d %s", r.status, r.body)
			}
		})
	}
}

// TestRelayedRateLimitKeepsItsHeaders: an upstream 429 relayed to the client keeps its
// Retry-After and rate-limit headers, so clients back off as the provider asks.
func TestRelayedRateLimitKeepsItsHeaders(t *testing.T) {
	up := fixedUpstream(t, 429, map[string]string{
		"Retry-After": "7", "X-Ratelimit-Remaining-Requests": "0", "X-Ratelimit-Reset-Requests": "7s",
		"Anthropic-Ratelimit-Tokens-Remaining": "0", "X-Other": "not relayed",
	}, `{"error":{"message":"slow down","type":"rate_limit_error"}}`)
	edge, _ := edgeFor(t, configTOML("failover", "max_retries = 1", backendSpec{id: "a", url: up}))
	r := post(t, edge+"/v1/chat/completions", "t", chatBody)
	if r.status != 429 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for k, want := range map[string]string{
		"Retry-After": "7", "X-Ratelimit-Remaining-Requests": "0", "X-Ratelimit-Reset-Requests": "7s",
		"Anthropic-Ratelimit-Tokens-Remaining": "0", "X-Other": "",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
}

// TestPreflightAllowsWhatTheSDKsSend: the official SDKs' browser preflights ask for
// their own headers; the edge allows what is asked for.
func TestPreflightAllowsWhatTheSDKsSend(t *testing.T) {
	edge, _ := edgeFor(t, configTOML("failover", "", backendSpec{id: "a", url: "http://127.0.0.1:1/v1"}))
	for _, tc := range []struct{ asked, want string }{
		{"authorization,content-type,x-stainless-os,x-stainless-retry-count", "x-stainless-os"},
		{"x-api-key,anthropic-version,anthropic-beta,anthropic-dangerous-direct-browser-access", "anthropic-dangerous-direct-browser-access"},
		{"", "Authorization"},
		{"x-a;y=<script>", "Authorization"}, // not header names: the default list
	} {
		req, _ := http.NewRequest(http.MethodOptions, edge+"/v1/messages", nil)
		req.Header.Set("Origin", "https://app.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		if tc.asked != "" {
			req.Header.Set("Access-Control-Request-Headers", tc.asked)
		}
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), tc.want) {
			t.Errorf("asked %q: %d, allowed %q", tc.asked, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Headers"))
		}
	}
}

// TestQuotaIsSpentOnlyOnRoutedRequests: requests refused before reaching a backend (a
// bad forced backend, nothing available) use none of the key's rate limit.
func TestQuotaIsSpentOnlyOnRoutedRequests(t *testing.T) {
	sim := startSim(t, "a", upstreamsim.Options{})
	doc := strings.Replace(configTOML("failover", "", backendSpec{id: "a", url: sim.URL()}),
		"[users.u]\nname = \"u\"\ntoken = \"t\"\n", "[users.u]\nname = \"u\"\ntoken = \"t\"\nrate_limit = { requests_per_minute = 1 }\n", 1)
	edge, _ := edgeFor(t, doc)
	for range 3 {
		if r := post(t, edge+"/v1/chat/completions", "t", `{"model":"m","backend":"zzz"}`); r.status != 400 {
			t.Fatalf("bad backend: %d %s", r.status, r.body)
		}
	}
	if r := post(t, edge+"/v1/chat/completions", "t", chatBody); r.status != 200 {
		t.Fatalf("first routed request: %d %s", r.status, r.body)
	}
	if r := post(t, edge+"/v1/chat/completions", "t", chatBody); r.status != 429 {
		t.Fatalf("second routed request: %d %s, want 429", r.status, r.body)
	}
}

// TestStaleSnapshotIsRefused: past --max-snapshot-age without its control plane, the
// edge refuses requests rather than serve a configuration that may still hold
// revoked keys.
func TestStaleSnapshotIsRefused(t *testing.T) {
	sim := startSim(t, "a", upstreamsim.Options{})
	rt := runtimeFor(t, configTOML("failover", "", backendSpec{id: "a", url: sim.URL()}))
	for _, stale := range []bool{false, true} {
		edge := serveHandler(t, newHandler(rt, Options{Freshness: controlPlane{stale: stale}}))
		r := post(t, edge+"/v1/chat/completions", "t", chatBody)
		if !stale {
			if r.status != 200 {
				t.Fatalf("fresh: %d %s", r.status, r.body)
			}
			continue
		}
		if _, _, code := openAIError(t, r.body); r.status != 503 || code != "config_stale" || r.header.Get("Retry-After") == "" {
			t.Fatalf("stale: %d %s", r.status, r.body)
		}
	}
}
