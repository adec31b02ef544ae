package status

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/serving"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"github.com/valyala/fasthttp"
)

// manyModels serves n models, each with its own backend on its own provider.
func manyModels(tb testing.TB, n int) *serving.Runtime {
	tb.Helper()
	cfg := &berryv1.Config{}
	for i := range n {
		id := fmt.Sprintf("m%05d", i)
		cfg.Providers = append(cfg.Providers, &berryv1.Provider{Id: "p" + id, Name: id, BaseUrl: "http://127.0.0.1:1/v1",
			Models: []string{"up"}, Enabled: true})
		cfg.Models = append(cfg.Models, &berryv1.Model{Id: id, Name: id, Enabled: true,
			Backends: []*berryv1.Backend{{Provider: "p" + id, Model: "up", Weight: 1, Enabled: true}}})
	}
	config.Normalize(cfg)
	var rt serving.Runtime
	if err := rt.Apply(&berryv1.Snapshot{Version: 1, Config: cfg}); err != nil {
		tb.Fatal(err)
	}
	return &rt
}

// get runs a page handler the way fasthttp's server does, including a streamed body.
func get(tb testing.TB, page func(*fasthttp.RequestCtx), path string) (int, string) {
	tb.Helper()
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.SetRequestURI(path)
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
	page(&ctx)
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	if err := ctx.Response.Write(bw); err != nil {
		tb.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(&out)); err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode(), string(resp.Body())
}

// TestMetricsFollowUse: with 10,000 models configured and one used, the exposition
// carries the used model's and backend's series and none of the others'.
func TestMetricsFollowUse(t *testing.T) {
	rt := manyModels(t, 10_000)
	m := rt.Table().ModelByName("m00042")
	m.Stats.Requests[backends.Class2xx].Add(1)
	b := m.Backends[0]
	b.Stats.Requests[backends.Class2xx].Add(1)
	b.State.Duration.Observe(time.Millisecond)
	p := &Pages{Runtime: rt}
	status, body := get(t, p.Metrics, "/metrics")
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	for _, want := range []string{
		`berry_requests_total{model="m00042",class="2xx"} 1`,
		`berry_upstream_requests_total{model="m00042",backend="pm00042/up",class="2xx"} 1`,
		`berry_breaker_state{backend="pm00042/up"} 0`,
		`berry_upstream_latency_seconds_count{backend="pm00042/up"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, "m00041") || strings.Count(body, "pm00042/up") > 60 {
		t.Fatalf("series for unused models or backends (%d bytes)", len(body))
	}
}

// TestHealthAtScale: /health at 10,000 models is complete and well formed.
func TestHealthAtScale(t *testing.T) {
	rt := manyModels(t, 10_000)
	p := &Pages{Runtime: rt}
	status, body := get(t, p.Health, "/health")
	if status != 200 || strings.Count(body, `"model":`) != 20_000 || !strings.HasSuffix(body, `],"status":"ok"}`) {
		t.Fatalf("%d, %d bytes ending %q", status, len(body), body[max(len(body)-40, 0):])
	}
}

// BenchmarkScrape is one /metrics and one /health answer at 10,000 configured models,
// 100 of them used: B/op shows what a scrape costs in memory.
func BenchmarkScrape(b *testing.B) {
	rt := manyModels(b, 10_000)
	for i := range 100 {
		m := rt.Table().ModelByName(fmt.Sprintf("m%05d", i*100))
		m.Stats.Requests[backends.Class2xx].Add(1)
		m.Backends[0].Stats.Requests[backends.Class2xx].Add(1)
		m.Backends[0].State.Duration.Observe(time.Millisecond)
	}
	p := &Pages{Runtime: rt}
	for _, page := range []struct {
		name string
		h    func(*fasthttp.RequestCtx)
	}{{"metrics", p.Metrics}, {"health", p.Health}} {
		b.Run(page.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			var req fasthttp.Request
			req.SetRequestURI("/" + page.name)
			ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
			var n int64
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				page.h(&ctx)
				cw := &countingWriter{}
				bw := bufio.NewWriter(cw)
				if err := ctx.Response.Write(bw); err != nil {
					b.Fatal(err)
				}
				_ = bw.Flush()
				n = cw.n
			}
			b.ReportMetric(float64(n), "bytes/answer")
		})
	}
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
