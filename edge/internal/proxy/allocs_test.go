package proxy

import (
	"bufio"
	"io"
	"path/filepath"
	"testing"

	"github.com/berry-gateway/berry/edge/internal/accesslog"
	"github.com/berry-gateway/berry/pkg/sse"
)

// TestHotPathAllocations holds the buffered passthrough and the route step at zero
// allocations per request, as fasthttp's own allocation tests hold its server's: the
// pooled request value and the pooled upstream request/response carry everything,
// the access-log line included.
// The race detector allocates on its own, so the test runs without it.
func TestHotPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; run without -race")
	}
	up := staticUpstream(t)
	rt := runtimeFor(t, configTOML("weighted_random", "max_retries = 2",
		backendSpec{id: "a", url: up}, backendSpec{id: "b", url: up}))
	h := newHandler(rt, Options{})
	al, err := accesslog.Open(filepath.Join(t.TempDir(), "access.log"), "e", accesslog.JSON, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	logged := newHandler(rt, Options{AccessLog: al})
	buffered := func(h *Handler) func(t *testing.T) func() {
		return func(t *testing.T) func() {
			ctx := chatRequest(benchBody)
			bw := bufio.NewWriter(io.Discard)
			return func() {
				ctx.Response.Reset()
				h.ServeHTTP(ctx)
				if ctx.Response.StatusCode() != 200 {
					t.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
				if err := ctx.Response.Write(bw); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	tests := []struct {
		name string
		run  func(t *testing.T) func()
	}{
		{"route", func(t *testing.T) func() {
			ctx := chatRequest(benchBody)
			return func() { route(t, ctx, rt.Table()) }
		}},
		{"buffered passthrough", buffered(h)},
		// What a stream does per event: classify it before the first content, find the
		// end of complete events and look for the usage-only chunk after it.
		{"stream event scans", func(t *testing.T) func() {
			events := []byte(benchSSE + "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\n")
			return func() {
				for rest := events; len(rest) > 0; {
					ev, next, ok := sse.Next(rest)
					if !ok {
						t.Fatal("benchSSE has an incomplete event")
					}
					name, data, _ := sse.Fields(ev, nil)
					_ = classify(name, data)
					rest = rest[next:]
				}
				if completeEvents(events) != len(events) || !emptyChoices(events) {
					t.Fatal("the scans misread benchSSE")
				}
			}
		}},
		// The line is formatted into a pooled buffer and written by the logger's own
		// goroutine into a reused bufio.Writer.
		{"buffered passthrough, access log", buffered(logged)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.run(t)
			f() // warm the pools and the upstream connection
			if n := testing.AllocsPerRun(200, f); n != 0 {
				t.Fatalf("%v allocations per request, want 0", n)
			}
		})
	}
}
