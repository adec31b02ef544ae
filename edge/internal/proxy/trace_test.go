package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestTracing follows a request that fails over, continuing the client's trace: a
// server span for the request and a client span per attempt, with the GenAI
// attributes, the first attempt saying why the request moved on, and the upstream
// receiving the attempt's trace context.
func TestTracing(t *testing.T) {
	a := startSim(t, "a", upstreamsim.Options{FailStatus: 503})
	b := startSim(t, "b", upstreamsim.Options{Chunks: 3})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	rt := runtimeFor(t, configTOML("failover", "max_retries = 2",
		backendSpec{id: "a", url: a.URL(), priority: 1}, backendSpec{id: "b", url: b.URL(), priority: 2}))
	edge := serveHandler(t, newHandler(rt, Options{Tracer: tp.Tracer("test")}))

	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, stream := range []bool{false, true} {
		rec.Reset()
		body := chatBody
		if stream {
			body = `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
		}
		req, _ := http.NewRequest(http.MethodPost, edge+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer t")
		req.Header.Set("Traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var spans []sdktrace.ReadOnlySpan
		eventually(t, "three spans", func() bool { spans = rec.Ended(); return len(spans) >= 3 })
		if len(spans) != 3 {
			t.Fatalf("%d spans, want 3", len(spans))
		}
		byName := map[string][]sdktrace.ReadOnlySpan{}
		for _, s := range spans {
			byName[s.Name()] = append(byName[s.Name()], s)
		}
		server := byName["chat m"]
		if len(server) != 1 || server[0].SpanKind() != trace.SpanKindServer ||
			server[0].SpanContext().TraceID().String() != clientTrace || server[0].Parent().SpanID().String() != "00f067aa0ba902b7" {
			t.Fatalf("stream=%v: no server span continuing the client's trace: %v", stream, byName)
		}
		sa := attrs(server[0])
		if sa["gen_ai.operation.name"].AsString() != "chat" || sa["gen_ai.request.model"].AsString() != "m" ||
			sa["berry.backend"].AsString() != "b/up-b" || sa["berry.attempts"].AsInt64() != 2 ||
			sa["http.response.status_code"].AsInt64() != 200 || sa["gen_ai.usage.output_tokens"].AsInt64() <= 0 ||
			sa["gen_ai.usage.input_tokens"].AsInt64() <= 0 || sa["gen_ai.response.model"].AsString() != "up-b" ||
			sa["berry.request_id"].AsString() != resp.Header.Get("X-Request-Id") {
			t.Errorf("stream=%v: server span attributes %v", stream, sa)
		}
		if stream && sa["berry.stream_end"].AsString() != "complete" {
			t.Errorf("stream: berry.stream_end %v", sa["berry.stream_end"])
		}
		first, second := byName["chat up-a"], byName["chat up-b"]
		if len(first) != 1 || len(second) != 1 {
			t.Fatalf("attempt spans: %v", byName)
		}
		fa, sa2 := attrs(first[0]), attrs(second[0])
		if first[0].SpanKind() != trace.SpanKindClient || first[0].Parent().SpanID() != server[0].SpanContext().SpanID() ||
			fa["berry.attempt"].AsInt64() != 1 || fa["berry.failover_reason"].AsString() != "5xx" ||
			fa["http.response.status_code"].AsInt64() != 503 || fa["gen_ai.provider.name"].AsString() != "openai" {
			t.Errorf("first attempt span: %v", fa)
		}
		if sa2["berry.attempt"].AsInt64() != 2 || sa2["berry.outcome"].AsString() != "2xx" ||
			sa2["gen_ai.request.model"].AsString() != "up-b" {
			t.Errorf("second attempt span: %v", sa2)
		}
		// The upstream that served got the second attempt's context.
		tp := b.Stats().LastHeader.Get("Traceparent")
		want := "00-" + clientTrace + "-" + second[0].SpanContext().SpanID().String() + "-01"
		if tp != want {
			t.Errorf("stream=%v: upstream traceparent %q, want %q", stream, tp, want)
		}
	}
}

// TestTracingOffSendsNothing: without a tracer the edge neither adds trace headers
// upstream nor drops the client's.
func TestTracingOffSendsNothing(t *testing.T) {
	up := startSim(t, "a", upstreamsim.Options{})
	edge, _ := edgeFor(t, configTOML("failover", "", backendSpec{id: "a", url: up.URL()}))
	if r := post(t, edge+"/v1/chat/completions", "t", chatBody); r.status != 200 {
		t.Fatal(r.status)
	}
	if h := up.Stats().LastHeader.Get("Traceparent"); h != "" {
		t.Fatalf("traceparent %q sent with tracing off", h)
	}
}
