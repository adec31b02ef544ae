package proxy

import (
	"bufio"
	"io"
	"testing"
)

// TestHotPathAllocations holds the buffered passthrough and the route step at zero
// allocations per request, as fasthttp's own allocation tests hold its server's: the
// pooled request value and the pooled upstream request/response carry everything.
// The race detector allocates on its own, so the test runs without it.
func TestHotPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; run without -race")
	}
	up := staticUpstream(t)
	rt := runtimeFor(t, configTOML("weighted_random", "max_retries = 2",
		backendSpec{id: "a", url: up}, backendSpec{id: "b", url: up}))
	h := newHandler(rt, Options{})
	tests := []struct {
		name string
		run  func(t *testing.T) func()
	}{
		{"route", func(t *testing.T) func() {
			ctx := chatRequest(benchBody)
			return func() { route(t, ctx, rt.Table()) }
		}},
		{"buffered passthrough", func(t *testing.T) func() {
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
		}},
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
