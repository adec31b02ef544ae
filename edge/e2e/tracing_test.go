package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// jaegerBinary finds Jaeger, which .ci/tools builds from the Go module proxy.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BERRY_JAEGER"); p != "" {
		return p
	}
	if p, err := exec.LookPath("jaeger"); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	if p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "jaeger"); fileExists(p) {
		return p
	}
	t.Skip("Jaeger not installed: `bash .ci/tools` builds it (github.com/jaegertracing/jaeger/cmd/jaeger v1.76.0) into $(go env GOPATH)/bin, or set BERRY_JAEGER")
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestTracesReachJaeger sends a request through an edge exporting to a real Jaeger
// over OTLP/HTTP, continuing the client's trace, and reads the trace back from
// Jaeger's query API: the server span and the attempt spans arrive, linked, with their
// GenAI and Berry attributes. (The failover attributes are checked span by span in the
// proxy's TestTracing.)
func TestTracesReachJaeger(t *testing.T) {
	jaeger := jaegerBinary(t)
	dir := t.TempDir()
	otlp, query := freeAddr(t), freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "jaeger.yaml"), fmt.Sprintf(`
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 1000
receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`, query, freeAddr(t), otlp))
	startProc(t, "jaeger", jaeger, "--config", "file:"+cfg)
	eventually(t, "Jaeger's query API answers", func() error {
		resp, err := http.Get("http://" + query + "/api/services")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})

	bad := startSim(t, upstreamsim.Options{Name: "sim-a", FailStatus: 503})
	good := startSim(t, upstreamsim.Options{Name: "sim-b"})
	path := writeFile(t, filepath.Join(dir, "berry.toml"), fmt.Sprintf(`
[settings]
max_retries = 2
[providers.a]
name = "a"
base_url = %q
api_key = "k"
models = ["m"]
[providers.b]
name = "b"
base_url = %q
api_key = "k"
models = ["m"]
[models.chat]
name = "chat"
strategy = "failover"
[[models.chat.backends]]
provider = "a"
model = "m"
priority = 1
[[models.chat.backends]]
provider = "b"
model = "m"
priority = 2
[users.u]
name = "u"
token = "t"
`, bad.URL(), good.URL()))
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+otlp)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	t.Setenv("OTEL_SERVICE_NAME", "berry-edge-e2e")
	addr := freeAddr(t)
	p := startProc(t, "edge", "berry-edge", "--listen", addr, "--config", path, "--edge-id", "trace-edge")
	e := &edge{proc: p, url: "http://" + addr}
	e.waitVersion(t, 1)

	const traceID = "5b8efff798038103d269b633813fc60c"
	req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"chat","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer t")
	req.Header.Set("Traceparent", "00-"+traceID+"-eee19b7ec3c1b174-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}

	type span struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			SpanID string `json:"spanID"`
		} `json:"references"`
		Tags []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
	}
	var spans []span
	eventually(t, "the trace in Jaeger", func() error {
		resp, err := http.Get("http://" + query + "/api/traces/" + traceID)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out struct {
			Data []struct {
				Spans []span `json:"spans"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return err
		}
		if len(out.Data) == 0 || len(out.Data[0].Spans) < 2 {
			return fmt.Errorf("not all spans yet: %+v", out.Data)
		}
		spans = out.Data[0].Spans
		return nil
	})
	tags := func(s span) map[string]string {
		m := map[string]string{}
		for _, tg := range s.Tags {
			m[tg.Key] = fmt.Sprint(tg.Value)
		}
		return m
	}
	var server, served span
	for _, s := range spans {
		switch {
		case s.OperationName == "chat chat":
			server = s
		case s.OperationName == "chat m" && tags(s)["berry.outcome"] == "2xx":
			served = s
		}
	}
	st, at := tags(server), tags(served)
	if st["gen_ai.operation.name"] != "chat" || st["gen_ai.request.model"] != "chat" || st["berry.backend"] != "b/m" ||
		st["gen_ai.usage.input_tokens"] == "" || st["gen_ai.usage.output_tokens"] == "" ||
		st["gen_ai.response.model"] != "m" || st["http.response.status_code"] != "200" ||
		len(server.References) == 0 || server.References[0].SpanID != "eee19b7ec3c1b174" {
		t.Errorf("server span %q: tags %v, references %+v", server.OperationName, st, server.References)
	}
	if at["gen_ai.provider.name"] != "openai" || at["berry.backend"] != "b/m" || at["gen_ai.request.model"] != "m" ||
		len(served.References) == 0 || served.References[0].SpanID != server.SpanID {
		t.Errorf("attempt span: tags %v, references %+v, server span %s", at, served.References, server.SpanID)
	}
	// The backend that failed (when the edge had not already taken it out of rotation
	// on its health probe) has its own span saying why the request moved on.
	for _, s := range spans {
		if tg := tags(s); tg["berry.backend"] == "a/m" && tg["berry.failover_reason"] != "5xx" {
			t.Errorf("failed attempt span: tags %v", tg)
		}
	}
}
