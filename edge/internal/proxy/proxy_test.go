package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/edge/internal/serving"
	"github.com/berry-gateway/berry/edge/internal/status"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
)

// runtimeFor serves doc as version 1, as a standalone berry-edge's runtime would
// (keys' limits are the edge's own); "" serves nothing yet.
func runtimeFor(t testing.TB, doc string) *serving.Runtime {
	t.Helper()
	var rt serving.Runtime
	rt.Quota().SetStandalone(true)
	if doc == "" {
		return &rt
	}
	cfg, _, err := config.ParseTOML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Apply(&berryv1.Snapshot{Version: 1, Config: cfg}); err != nil {
		t.Fatal(err)
	}
	return &rt
}

// newHandler is the handler as berry-edge assembles it, with the real status pages.
func newHandler(rt *serving.Runtime, o Options) *Handler {
	return New(rt, &status.Pages{Runtime: rt}, o)
}

// serveEdge runs the handler on a loopback socket and returns its base URL.
func serveEdge(t testing.TB, rt *serving.Runtime) string {
	t.Helper()
	return serveHandler(t, newHandler(rt, Options{}))
}

// serveHandler runs h on a loopback socket and returns its base URL.
func serveHandler(t testing.TB, h *Handler) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h.ServeHTTP, ErrorHandler: WriteProtocolError, MaxRequestBodySize: 1 << 20}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + lis.Addr().String()
}

func oneBackend(upstream string) string {
	return fmt.Sprintf(`
[providers.up]
name = "up"
base_url = %q
api_key = "k"
models = ["m"]
[models.m]
name = "m"
[[models.m.backends]]
provider = "up"
model = "m"
[users.u]
name = "u"
token = "t"
`, upstream)
}

// TestStreamIsRelayedAsItArrives holds the upstream after its first event until the
// client has read that event: an edge that buffered the stream would deadlock here.
func TestStreamIsRelayedAsItArrives(t *testing.T) {
	release := make(chan struct{})
	up := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"first\"}}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"second\"}}]}\n\ndata: [DONE]\n\n")
	})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = up.Serve(lis) }()
	defer up.Close()

	edge := serveEdge(t, runtimeFor(t, oneBackend("http://"+lis.Addr().String()+"/v1")))
	req, _ := http.NewRequest(http.MethodPost, edge+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
	req.Header.Set("Authorization", "Bearer t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if !strings.Contains(line, "first") {
			t.Fatalf("first line = %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event did not reach the client while the upstream held the rest: the stream is buffered")
	}
	close(release)
}

func TestNoTableYet(t *testing.T) {
	edge := serveEdge(t, runtimeFor(t, ""))
	for _, path := range []string{"/v1/chat/completions", "/health"} {
		resp, err := http.Post(edge+path, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s: %d %s, want 503", path, resp.StatusCode, b)
		}
	}
}

// controlPlane stands for cpsync.Client's connection state.
type controlPlane struct {
	up, stale bool
	addr      string
}

func (c controlPlane) Connected() bool       { return c.up }
func (c controlPlane) MergedBatches() uint64 { return 0 }
func (c controlPlane) Stale() bool           { return c.stale }
func (c controlPlane) Address() string       { return c.addr }

func TestReadyz(t *testing.T) {
	rt := runtimeFor(t, oneBackend("http://127.0.0.1:1/v1"))
	tests := []struct {
		name   string
		pages  *status.Pages
		status int
		want   string
	}{
		{"no snapshot", &status.Pages{Runtime: runtimeFor(t, "")}, 503, `"not_ready"`},
		{"snapshot, standalone", &status.Pages{Runtime: rt}, 200, `{"status":"ready","config_version":1}`},
		{"snapshot, control plane away", &status.Pages{Runtime: rt, ControlPlane: controlPlane{}}, 200, `"control_plane_connected":false`},
		{"snapshot, connected", &status.Pages{Runtime: rt, ControlPlane: controlPlane{up: true, addr: "10.0.0.2:9090"}}, 200,
			`"control_plane_connected":true,"control_plane":"10.0.0.2:9090"}`},
		{"snapshot, control plane away too long", &status.Pages{Runtime: rt, ControlPlane: controlPlane{stale: true}}, 503, `configuration stale`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			edge := serveHandler(t, New(tc.pages.Runtime.(*serving.Runtime), tc.pages, Options{}))
			resp, err := http.Get(edge + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%d %s, want %d with %s", resp.StatusCode, b, tc.status, tc.want)
			}
			// Liveness does not depend on any of it.
			resp, err = http.Get(edge + "/healthz")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("healthz: %v %v", resp, err)
			}
			resp.Body.Close()
		})
	}
}
