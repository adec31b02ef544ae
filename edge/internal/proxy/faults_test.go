package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
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
