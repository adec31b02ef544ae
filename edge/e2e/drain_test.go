package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// TestGracefulDrain sends SIGTERM to an edge with a long stream open: /readyz turns
// 503 while new requests are still served for --shutdown-delay, then the edge stops
// accepting, lets a short stream finish, and at --drain-timeout ends the long stream
// with an SSE error event saying it is shutting down, then exits cleanly.
func TestGracefulDrain(t *testing.T) {
	slow := startSim(t, upstreamsim.Options{Name: "slow", Chunks: 200, ChunkDelay: 100 * time.Millisecond}) // 20 s
	fast := startSim(t, upstreamsim.Options{Name: "fast", Chunks: 5, ChunkDelay: 100 * time.Millisecond})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "berry.toml")
	writeFile(t, cfg, fmt.Sprintf(`
[providers.slow]
name = "slow"
base_url = %q
api_key = "k"
models = ["m"]
[providers.fast]
name = "fast"
base_url = %q
api_key = "k"
models = ["m"]
[models.slow]
name = "slow"
[[models.slow.backends]]
provider = "slow"
model = "m"
[models.fast]
name = "fast"
[[models.fast.backends]]
provider = "fast"
model = "m"
[users.u]
name = "u"
token = "t"
`, slow.URL(), fast.URL()))
	addr := freeAddr(t)
	accessLog := filepath.Join(dir, "access.log")
	const shutdownDelay, drainTimeout = 1500 * time.Millisecond, 2 * time.Second
	p := startProc(t, "edge", "berry-edge", "--listen", addr, "--config", cfg, "--access-log", accessLog,
		"--shutdown-delay", shutdownDelay.String(), "--drain-timeout", drainTimeout.String())
	e := &edge{proc: p, url: "http://" + addr}
	e.waitVersion(t, 1)

	stream := func(model string) (*http.Response, *bufio.Reader) {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/chat/completions",
			strings.NewReader(`{"model":"`+model+`","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer t")
		// Its own connection: a keep-alive one shared with other requests would be
		// closed by the drain in between.
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s stream: %d", model, resp.StatusCode)
		}
		return resp, bufio.NewReader(resp.Body)
	}
	long, longBody := stream("slow")
	defer long.Body.Close()
	if _, err := longBody.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	longID := long.Header.Get("X-Request-Id")

	sigterm := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// During the shutdown delay: not ready, but still serving.
	eventually(t, "/readyz turns 503", func() error {
		code, _ := e.readyz(t)
		if code != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz %d", code)
		}
		return nil
	})
	short, shortBody := stream("fast")
	defer short.Body.Close()
	if time.Since(sigterm) > shutdownDelay {
		t.Skip("the machine was too slow to open the stream within the shutdown delay")
	}

	// After the delay, no new connections; the short stream still finishes in full.
	eventually(t, "the edge stops accepting connections", func() error {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return fmt.Errorf("still accepting")
		}
		return nil
	})
	if rest := readAll(t, shortBody); !strings.HasSuffix(rest, "data: [DONE]\n\n") {
		t.Fatalf("the short stream did not finish: %q", rest)
	}

	// At the drain timeout, the long stream ends with the edge's error event.
	rest := readAll(t, longBody)
	if took := time.Since(sigterm); took < shutdownDelay+drainTimeout-200*time.Millisecond {
		t.Fatalf("the long stream ended %v after SIGTERM, before the drain timeout", took)
	}
	if strings.Contains(rest, "[DONE]") {
		t.Fatalf("the long stream ended cleanly: %q", rest)
	}
	events := strings.Split(strings.TrimSpace(rest), "\n\n")
	last := strings.TrimPrefix(events[len(events)-1], "data: ")
	var ev struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(last), &ev); err != nil || ev.Error.Code != "shutting_down" ||
		!strings.Contains(ev.Error.Message, "shutting down") {
		t.Fatalf("the long stream's last event is not the shutdown error: %q", last)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the edge did not exit after the drain")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the edge exited with %d", code)
	}
	log, err := os.ReadFile(accessLog)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		var l struct {
			RequestID string `json:"request_id"`
			StreamEnd string `json:"stream_end"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.RequestID == longID {
			found = l.StreamEnd == "shutdown"
		}
	}
	if !found {
		t.Fatalf("no access-log line with stream_end shutdown for %s:\n%s", longID, log)
	}
}

// readAll reads the rest of a stream.
func readAll(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	_, err := r.WriteTo(&b)
	if err != nil {
		t.Fatalf("reading the stream: %v (read %q)", err, b.String())
	}
	return b.String()
}
