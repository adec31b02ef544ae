package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// Model discovery through a real edge: when the Anthropic provider stops listing a
// model it listed before, the backend leaves rotation with the reason in /health, and
// rejoins once the model is listed again.
func TestModelDiscoveryThroughEdge(t *testing.T) {
	an := startSim(t, upstreamsim.Options{Name: "an", APIKey: "key-an", Models: []string{"claude-new", "claude-old"}})
	cp := startControlPlane(t, t.TempDir())
	e := startEdge(t, cp.addr, "discovery")
	v := importConfig(t, cp, fmt.Sprintf(`
[settings]
health_check_interval_seconds = 1
recovery_check_interval_seconds = 1

[providers.an]
name = "an"
base_url = %q
api_key = "key-an"
models = ["claude-new", "claude-old"]
backend_type = "anthropic"

[models.old]
name = "old"
[[models.old.backends]]
provider = "an"
model = "claude-old"

[users.u]
name = "u"
token = "tok"
`, an.AnthropicURL()))
	e.waitVersion(t, v)
	// The sim sees only probes so far: once one has answered, claude-old was listed.
	eventually(t, "a probe reached the provider", func() error {
		if an.Stats().Requests == 0 {
			return fmt.Errorf("no probe yet")
		}
		return nil
	})
	backend := func() (available bool, probeErr string, err error) {
		resp, err := http.Get(e.url + "/health")
		if err != nil {
			return false, "", err
		}
		defer resp.Body.Close()
		var h struct {
			Models []struct {
				Backends []struct {
					Available  bool   `json:"available"`
					ProbeError string `json:"probe_error"`
				} `json:"backends"`
			} `json:"models"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || len(h.Models) != 1 || len(h.Models[0].Backends) != 1 {
			return false, "", fmt.Errorf("unexpected /health: %v", err)
		}
		b := h.Models[0].Backends[0]
		return b.Available, b.ProbeError, nil
	}
	body := `{"model":"old","messages":[{"role":"user","content":"hi"}]}`
	if r := chat(t, e.url, "tok", body); r.status != http.StatusOK {
		t.Fatalf("before: %d %s", r.status, r.body)
	}

	o := an.Options()
	o.Models = []string{"claude-new"}
	an.SetOptions(o)
	eventually(t, "the vanished model leaves rotation with its reason", func() error {
		ok, reason, err := backend()
		if err != nil {
			return err
		}
		if ok || !strings.Contains(reason, `"claude-old" is no longer listed`) {
			return fmt.Errorf("available=%v reason=%q", ok, reason)
		}
		return nil
	})
	if r := chat(t, e.url, "tok", body); r.status != http.StatusServiceUnavailable {
		t.Fatalf("vanished: %d %s", r.status, r.body)
	}

	o.Models = []string{"claude-new", "claude-old"}
	an.SetOptions(o)
	eventually(t, "the model rejoins once listed again", func() error {
		ok, reason, err := backend()
		if err != nil {
			return err
		}
		if !ok || reason != "" {
			return fmt.Errorf("available=%v reason=%q", ok, reason)
		}
		return nil
	})
	if r := chat(t, e.url, "tok", body); r.status != http.StatusOK {
		t.Fatalf("after: %d %s", r.status, r.body)
	}
}
