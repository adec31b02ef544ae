package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const userToken = "berry-e2e-token"

// configTOML routes model "chat" to the provider named by target ("a" or "b").
func configTOML(urlA, urlB, target string) string {
	return fmt.Sprintf(`
[settings]
request_timeout_seconds = 10
max_retries = 2

[providers.sim-a]
name = "Simulator A"
base_url = %q
api_key = "sk-sim-a-secret"
models = ["up-a"]

[providers.sim-b]
name = "Simulator B"
base_url = %q
api_key = "sk-sim-b-secret"
models = ["up-b"]

[models.chat]
name = "chat"

[[models.chat.backends]]
provider = "sim-%s"
model = "up-%s"

[models.other]
name = "other"

[[models.other.backends]]
provider = "sim-a"
model = "up-a"

[users.alice]
name = "Alice"
token = %q
allowed_models = ["chat"]
`, urlA, urlB, target, target, userToken)
}

func startSim(t *testing.T, opts upstreamsim.Options) *upstreamsim.Server {
	t.Helper()
	s := upstreamsim.New(opts)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func importConfig(t *testing.T, cp *controlPlane, doc string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cp.admin.ImportConfig(ctx, &berryv1.ImportConfigRequest{Toml: doc, Message: t.Name()})
	if err != nil {
		t.Fatalf("ImportConfig: %v", err)
	}
	return resp.GetVersion()
}

func TestEndToEnd(t *testing.T) {
	simA := startSim(t, upstreamsim.Options{Name: "sim-a", APIKey: "sk-sim-a-secret", Chunks: 4})
	simB := startSim(t, upstreamsim.Options{Name: "sim-b", APIKey: "sk-sim-b-secret", Chunks: 4})
	cp := startControlPlane(t, t.TempDir())
	edges := []*edge{startEdge(t, cp.addr, "e1"), startEdge(t, cp.addr, "e2")}

	nonStream := `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`
	stream := `{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}`

	t.Run("no config yet: 503", func(t *testing.T) {
		for _, e := range edges {
			r := chat(t, e.url, userToken, nonStream)
			if r.status != http.StatusServiceUnavailable || r.errType == "" {
				t.Errorf("%s before config: %d %s", e.name, r.status, r.body)
			}
		}
	})

	v1 := importConfig(t, cp, configTOML(simA.URL(), simB.URL(), "a"))
	for _, e := range edges {
		e.waitVersion(t, v1)
	}

	t.Run("routes to A through every edge", func(t *testing.T) {
		for _, e := range edges {
			r := chat(t, e.url, userToken, nonStream)
			if r.status != http.StatusOK || !strings.Contains(r.content, "sim-a") || !strings.Contains(r.content, "up-a") {
				t.Errorf("%s non-stream: %d %q", e.name, r.status, r.body)
			}
			r = chat(t, e.url, userToken, stream)
			if r.status != http.StatusOK || !r.done || !strings.Contains(r.content, "sim-a") {
				t.Errorf("%s stream: %d done=%v %q", e.name, r.status, r.done, r.body)
			}
		}
		if got := simA.Stats().LastAuthorization; got != "Bearer sk-sim-a-secret" {
			t.Errorf("upstream saw Authorization %q, want the provider's key", got)
		}
	})

	t.Run("bad input gets OpenAI errors", func(t *testing.T) {
		tests := []struct {
			name, token, body string
			status            int
		}{
			{"no token", "", nonStream, 401},
			{"wrong token", "nope", nonStream, 401},
			{"unknown model", userToken, `{"model":"gpt-9","messages":[]}`, 404},
			{"model not allowed", userToken, `{"model":"other","messages":[]}`, 403},
			{"malformed JSON", userToken, `{"model":"chat",`, 400},
			{"no model", userToken, `{"messages":[]}`, 400},
			{"model not a string", userToken, `{"model":7}`, 400},
		}
		for _, tt := range tests {
			r := chat(t, edges[0].url, tt.token, tt.body)
			if r.status != tt.status || r.errType == "" {
				t.Errorf("%s: got %d %q, want %d with an OpenAI error", tt.name, r.status, r.body, tt.status)
			}
		}
	})

	t.Run("switch version with requests in flight", func(t *testing.T) {
		// Slow A down so its streams are still running when the config moves to B.
		simA.SetOptions(upstreamsim.Options{Name: "sim-a", APIKey: "sk-sim-a-secret", Chunks: 8, ChunkDelay: 150 * time.Millisecond})
		const perEdge = 3
		var started, finished sync.WaitGroup
		results := make(chan chatResult, perEdge*len(edges))
		for _, e := range edges {
			for range perEdge {
				started.Add(1)
				finished.Add(1)
				go func() {
					defer finished.Done()
					// Counted once on every path, so a request that fails early cannot
					// leave the test waiting for it.
					var once sync.Once
					markStarted := func() { once.Do(started.Done) }
					defer markStarted()
					req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/chat/completions", strings.NewReader(stream))
					req.Header.Set("Authorization", "Bearer "+userToken)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						results <- chatResult{body: err.Error()}
						return
					}
					defer resp.Body.Close()
					results <- readChat(t, resp, markStarted)
				}()
			}
		}
		waitGroup(t, &started, "every stream has its first event") // they are in flight

		v2 := importConfig(t, cp, configTOML(simA.URL(), simB.URL(), "b"))
		if v2 != v1+1 {
			t.Errorf("second import made version %d, want %d", v2, v1+1)
		}
		for _, e := range edges {
			e.waitVersion(t, v2)
		}
		for _, e := range edges {
			r := chat(t, e.url, userToken, nonStream)
			if r.status != http.StatusOK || !strings.Contains(r.content, "sim-b") {
				t.Errorf("%s after switch: %d %q, want an answer from sim-b", e.name, r.status, r.body)
			}
		}
		waitGroup(t, &finished, "every in-flight stream finishes")
		close(results)
		for r := range results {
			if r.status != http.StatusOK || !r.done || !strings.Contains(r.content, "sim-a") || r.errType != "" {
				t.Errorf("in-flight stream did not complete on the old route: %d done=%v %q", r.status, r.done, r.body)
			}
		}
	})

	t.Run("invalid import is refused and changes nothing", func(t *testing.T) {
		ctx := context.Background()
		before, err := cp.admin.GetCurrentVersion(ctx, &berryv1.GetCurrentVersionRequest{})
		if err != nil {
			t.Fatal(err)
		}
		bad := strings.Replace(configTOML(simA.URL(), simB.URL(), "b"), `model = "up-b"`, `model = "up-b"
weight = -1`, 1)
		_, err = cp.admin.ImportConfig(ctx, &berryv1.ImportConfigRequest{Toml: bad})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "models.chat.backends[0].weight") {
			t.Fatalf("invalid import: %v, want InvalidArgument naming models.chat.backends[0].weight", err)
		}
		_, err = cp.admin.ImportConfig(ctx, &berryv1.ImportConfigRequest{Toml: "[settings\n"})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("TOML syntax error: %v, want InvalidArgument", err)
		}
		after, err := cp.admin.GetCurrentVersion(ctx, &berryv1.GetCurrentVersionRequest{})
		if err != nil || after.GetVersion() != before.GetVersion() {
			t.Fatalf("version moved from %d to %d (%v)", before.GetVersion(), after.GetVersion(), err)
		}
	})

	t.Run("read API redacts secrets", func(t *testing.T) {
		got, err := cp.admin.GetConfig(context.Background(), &berryv1.GetConfigRequest{})
		if err != nil {
			t.Fatal(err)
		}
		text := got.String()
		for _, secret := range []string{"sk-sim-a-secret", "sk-sim-b-secret", userToken} {
			if strings.Contains(text, secret) {
				t.Errorf("GetConfig leaks %q", secret)
			}
		}
		for _, u := range got.GetConfig().GetUsers() {
			if len(u.GetTokenSha256()) != 0 {
				t.Errorf("GetConfig returns user %s's token hash", u.GetId())
			}
		}
		for _, p := range got.GetConfig().GetProviders() {
			if !p.GetApiKeySet() {
				t.Errorf("provider %s: api_key_set is false", p.GetId())
			}
		}
	})

	t.Run("graceful shutdown", func(t *testing.T) {
		for _, e := range edges {
			e.stop(t)
		}
		cp.stop(t)
		for _, p := range []*proc{edges[0].proc, edges[1].proc, cp.proc} {
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("%s exited with %d", p.name, code)
			}
		}
	})
}

// waitGroup waits for wg with a generous bound, so a stuck request fails the test
// instead of hanging it.
func waitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: still waiting after 60s", what)
	}
}
