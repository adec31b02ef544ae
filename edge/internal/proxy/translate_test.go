package proxy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// Providers whose API is not OpenAI's go through the adapters' translators: the client
// always sees OpenAI's shapes, and failover works on the translated stream.
func TestTranslatedProvider(t *testing.T) {
	an := func(id, url, extra string) backendSpec {
		return backendSpec{id: id, url: url, extra: `backend_type = "anthropic"` + "\n" + extra}
	}
	t.Run("buffered answer is translated", func(t *testing.T) {
		sim := startSim(t, "an", upstreamsim.Options{})
		edge, _ := edgeFor(t, configTOML("failover", "", an("an", sim.AnthropicURL(), "")))
		r := post(t, edge+"/v1/chat/completions", "t", chatBody)
		var v struct {
			Object  string `json:"object"`
			Choices []struct {
				Message struct{ Role, Content string } `json:"message"`
			} `json:"choices"`
		}
		if r.status != 200 || json.Unmarshal([]byte(r.body), &v) != nil || v.Object != "chat.completion" ||
			len(v.Choices) != 1 || v.Choices[0].Message.Content == "" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("stream is translated and ends with DONE", func(t *testing.T) {
		sim := startSim(t, "an", upstreamsim.Options{})
		edge, _ := edgeFor(t, configTOML("failover", "", an("an", sim.AnthropicURL(), "")))
		r := post(t, edge+"/v1/chat/completions", "t", streamBody)
		if r.status != 200 || !strings.Contains(r.body, "chat.completion.chunk") || !strings.HasSuffix(r.body, "data: [DONE]\n\n") ||
			strings.Contains(r.body, "message_start") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("error event before content fails over", func(t *testing.T) {
		bad := startSim(t, "bad", upstreamsim.Options{})
		good := startSim(t, "good", upstreamsim.Options{})
		edge, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
			backendSpec{id: "bad", url: bad.AnthropicURL(), priority: 1,
				extra: "backend_type = \"anthropic\"\nheaders = { \"X-Sim-Stream-Error-After\" = \"1\" }"},
			backendSpec{id: "good", url: good.URL(), priority: 2}))
		r := post(t, edge+"/v1/chat/completions", "t", streamBody)
		if r.status != 200 || !strings.Contains(r.body, "[DONE]") || strings.Contains(r.body, "overloaded") {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if good.Stats().ChatRequests != 1 {
			t.Fatalf("good saw %d requests, want 1", good.Stats().ChatRequests)
		}
	})
	t.Run("error event after content ends the stream with an error", func(t *testing.T) {
		bad := startSim(t, "bad", upstreamsim.Options{Chunks: 6})
		edge, _ := edgeFor(t, configTOML("failover", "max_retries = 1",
			an("bad", bad.AnthropicURL(), `headers = { "X-Sim-Stream-Error-After" = "5" }`)))
		r := post(t, edge+"/v1/chat/completions", "t", streamBody)
		if r.status != 200 || strings.Contains(r.body, "[DONE]") {
			t.Fatalf("%d %s", r.status, r.body)
		}
		events := strings.Split(strings.TrimSpace(r.body), "\n\n")
		openAIError(t, strings.TrimPrefix(strings.TrimSpace(events[len(events)-1]), "data: "))
	})
	t.Run("529 fails over and is shown as a known status", func(t *testing.T) {
		bad := startSim(t, "bad", upstreamsim.Options{FailStatus: upstreamsim.StatusOverloaded})
		good := startSim(t, "good", upstreamsim.Options{})
		edge, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
			backendSpec{id: "bad", url: bad.AnthropicURL(), priority: 1, extra: `backend_type = "anthropic"`},
			backendSpec{id: "good", url: good.URL(), priority: 2}))
		if r := post(t, edge+"/v1/chat/completions", "t", chatBody); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		only, _ := edgeFor(t, configTOML("failover", "max_retries = 1",
			an("bad", bad.AnthropicURL(), "")))
		r := post(t, only+"/v1/chat/completions", "t", chatBody)
		if r.status == upstreamsim.StatusOverloaded || r.status < 500 {
			t.Fatalf("client saw status %d for an upstream 529", r.status)
		}
		openAIError(t, r.body)
	})
	t.Run("request one provider cannot express goes to one that can, else is the client's 400", func(t *testing.T) {
		an1 := startSim(t, "an", upstreamsim.Options{})
		good := startSim(t, "good", upstreamsim.Options{})
		edge, _ := edgeFor(t, configTOML("failover", "max_retries = 1",
			backendSpec{id: "an", url: an1.AnthropicURL(), priority: 1, extra: `backend_type = "anthropic"`},
			backendSpec{id: "good", url: good.URL(), priority: 2}))
		n2 := `{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`
		// max_retries = 1: the backend that could not express it was not a try.
		if r := post(t, edge+"/v1/chat/completions", "t", n2); r.status != 200 || good.Stats().ChatRequests != 1 {
			t.Fatalf("%d %s (OpenAI backend asked %d times)", r.status, r.body, good.Stats().ChatRequests)
		}
		only, _ := edgeFor(t, configTOML("failover", "max_retries = 2",
			backendSpec{id: "an", url: an1.AnthropicURL(), priority: 1, extra: `backend_type = "anthropic"`}))
		r := post(t, only+"/v1/chat/completions", "t", n2)
		if r.status != 400 || !strings.Contains(r.body, "n > 1") {
			t.Fatalf("%d %s", r.status, r.body)
		}
		openAIError(t, r.body)
		if an1.Stats().Requests != 0 {
			t.Fatal("the Anthropic backend was sent a request it cannot express")
		}
	})
	t.Run("operation no backend supports is a 400", func(t *testing.T) {
		sim := startSim(t, "an", upstreamsim.Options{})
		edge, _ := edgeFor(t, configTOML("failover", "", an("an", sim.AnthropicURL(), "")))
		r := post(t, edge+"/v1/embeddings", "t", `{"model":"m","input":"hi"}`)
		if r.status != 400 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if _, _, code := openAIError(t, r.body); code != "unsupported_operation" {
			t.Fatalf("code %q", code)
		}
	})
}

func TestEmbeddingsAndCompletions(t *testing.T) {
	sim := startSim(t, "a", upstreamsim.Options{})
	edge, _ := edgeFor(t, configTOML("failover", "", backendSpec{id: "a", url: sim.URL()}))
	for path, body := range map[string]string{
		"/v1/embeddings":  `{"model":"m","input":"hello"}`,
		"/v1/completions": `{"model":"m","prompt":"hello"}`,
	} {
		r := post(t, edge+path, "t", body)
		if r.status != 200 || !strings.Contains(r.body, `"up-a"`) && !strings.Contains(r.body, "embedding") {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
}
