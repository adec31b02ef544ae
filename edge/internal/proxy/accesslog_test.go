package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/edge/internal/accesslog"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// logLine is an access-log line as a log pipeline would parse it.
type logLine struct {
	Time      string `json:"time"`
	RequestID string `json:"request_id"`
	Edge      string `json:"edge"`
	Key       string `json:"key"`
	Model     string `json:"model"`
	Backend   string `json:"backend"`
	Attempts  []struct {
		Backend string `json:"backend"`
		Outcome string `json:"outcome"`
	} `json:"attempts"`
	Status       int      `json:"status"`
	BytesIn      int      `json:"bytes_in"`
	BytesOut     int      `json:"bytes_out"`
	DurationMS   float64  `json:"duration_ms"`
	TTFTMS       *float64 `json:"ttft_ms"`
	InputTokens  *int     `json:"input_tokens"`
	OutputTokens *int     `json:"output_tokens"`
	StreamEnd    string   `json:"stream_end"`
	Client       string   `json:"client"`
}

// readLog waits for n lines in the access log at path and parses them by request id.
func readLog(t *testing.T, path string, n int) map[string]logLine {
	t.Helper()
	var lines []string
	eventually(t, "access-log lines", func() bool {
		b, _ := os.ReadFile(path)
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		return len(b) > 0 && len(lines) >= n
	})
	if len(lines) != n {
		t.Fatalf("%d access-log lines, want %d:\n%s", len(lines), n, strings.Join(lines, "\n"))
	}
	byID := map[string]logLine{}
	for _, s := range lines {
		var l logLine
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("access-log line is not JSON: %v\n%s", err, s)
		}
		byID[l.RequestID] = l
	}
	return byID
}

func do(t *testing.T, method, url, token, requestID, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestAccessLogAndRequestIDs sends requests of every kind through an edge whose first
// backend fails, and matches each to its access-log line and its request id to what
// the client and the upstream saw.
func TestAccessLogAndRequestIDs(t *testing.T) {
	a := startSim(t, "a", upstreamsim.Options{FailStatus: 503})
	b := startSim(t, "b", upstreamsim.Options{Chunks: 3})
	path := filepath.Join(t.TempDir(), "access.log")
	al, err := accesslog.Open(path, "edge-7", accesslog.JSON, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = al.Close() })
	rt := runtimeFor(t, configTOML("failover", "max_retries = 2",
		backendSpec{id: "a", url: a.URL(), priority: 1}, backendSpec{id: "b", url: b.URL(), priority: 2}))
	edge := serveHandler(t, newHandler(rt, Options{AccessLog: al}))
	generated := regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-z]+$`)

	// A buffered request that fails over, with the client's own request id.
	resp, body := do(t, http.MethodPost, edge+"/v1/chat/completions", "t", "client-id_1.2:3", chatBody)
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != "client-id_1.2:3" {
		t.Fatalf("status %d, X-Request-Id %q: %s", resp.StatusCode, resp.Header.Get("X-Request-Id"), body)
	}
	if got := b.Stats().LastHeader.Get("X-Request-Id"); got != "client-id_1.2:3" {
		t.Fatalf("the upstream got X-Request-Id %q", got)
	}
	bufferedBody := body
	if !strings.HasPrefix(resp.Header.Get("X-Upstream-Request-Id"), "req_") {
		t.Fatalf("the upstream's own request id is not passed on: %v", resp.Header)
	}
	// A stream that fails over, asking for usage; the edge makes its id.
	resp, body = do(t, http.MethodPost, edge+"/v1/chat/completions", "t", "",
		`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three"}]}`)
	streamID := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 200 || !generated.MatchString(streamID) || !strings.Contains(body, "[DONE]") {
		t.Fatalf("stream: status %d, X-Request-Id %q: %s", resp.StatusCode, streamID, body)
	}
	if got := b.Stats().LastHeader.Get("X-Request-Id"); got != streamID {
		t.Fatalf("the upstream got X-Request-Id %q, the client %q", got, streamID)
	}
	// Errors carry ids too; an unsafe client id is replaced.
	resp, _ = do(t, http.MethodPost, edge+"/v1/chat/completions", "wrong", "has space", chatBody)
	authID := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 401 || !generated.MatchString(authID) {
		t.Fatalf("bad token: status %d, X-Request-Id %q", resp.StatusCode, authID)
	}
	resp, _ = do(t, http.MethodPost, edge+"/v1/chat/completions", "t", strings.Repeat("x", 129), `{"model":"nope"}`)
	unknownID := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 404 || !generated.MatchString(unknownID) {
		t.Fatalf("unknown model: status %d, X-Request-Id %q", resp.StatusCode, unknownID)
	}
	// Probes and scrapes are not logged, but answer with ids.
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if resp, _ := do(t, http.MethodGet, edge+p, "", "", ""); resp.Header.Get("X-Request-Id") == "" {
			t.Fatalf("%s has no X-Request-Id", p)
		}
	}

	lines := readLog(t, path, 4)
	buffered := lines["client-id_1.2:3"]
	if buffered.Edge != "edge-7" || buffered.Key != "u" || buffered.Model != "m" || buffered.Backend != "b/up-b" ||
		buffered.Status != 200 || buffered.BytesIn != len(chatBody) || buffered.BytesOut != len(bufferedBody) ||
		buffered.Client != "127.0.0.1" || buffered.DurationMS <= 0 || buffered.TTFTMS != nil || buffered.StreamEnd != "" {
		t.Errorf("buffered line: %+v", buffered)
	}
	if len(buffered.Attempts) != 2 || buffered.Attempts[0].Backend != "a/up-a" || buffered.Attempts[0].Outcome != "5xx" ||
		buffered.Attempts[1].Backend != "b/up-b" || buffered.Attempts[1].Outcome != "2xx" {
		t.Errorf("buffered attempts: %+v", buffered.Attempts)
	}
	if buffered.InputTokens == nil || *buffered.InputTokens <= 0 || buffered.OutputTokens == nil || *buffered.OutputTokens <= 0 {
		t.Errorf("buffered line has no usage: %+v", buffered)
	}

	stream := lines[streamID]
	if stream.Status != 200 || stream.Backend != "b/up-b" || len(stream.Attempts) != 2 || stream.Attempts[1].Outcome != "2xx" ||
		stream.BytesOut != len(body) || stream.TTFTMS == nil || *stream.TTFTMS > stream.DurationMS ||
		stream.StreamEnd != "complete" {
		t.Errorf("stream line: %+v (body %d bytes)", stream, len(body))
	}
	if stream.InputTokens == nil || *stream.InputTokens != 3 || stream.OutputTokens == nil || *stream.OutputTokens <= 0 {
		t.Errorf("stream line has no usage: %+v", stream)
	}
	if l := lines[authID]; l.Status != 401 || l.Key != "" || len(l.Attempts) != 0 || l.Backend != "" {
		t.Errorf("bad-token line: %+v", l)
	}
	if l := lines[unknownID]; l.Status != 404 || l.Key != "u" || l.Model != "" {
		t.Errorf("unknown-model line: %+v", l)
	}
}
