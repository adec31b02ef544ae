package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
	"github.com/openai/openai-go/responses"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// The Responses API through real edges, driven by the official openai-go SDK's
// Responses client: two OpenAI accounts (round robin, so consecutive requests change
// account) whose simulators refuse a previous_response_id they did not make, an
// Azure resource served on its v1 surface, and an Anthropic account the edge
// translates for. A conversation hops between two edges on every turn.
func responsesConfig(a, b, az, an string) string {
	return fmt.Sprintf(`
[settings]
request_timeout_seconds = 10

[providers.a]
name = "account A"
base_url = %[1]q
api_key = "key-a"
models = ["gpt-up"]

[providers.b]
name = "account B"
base_url = %[2]q
api_key = "key-b"
models = ["gpt-up"]

[providers.az]
name = "Azure"
base_url = %[3]q
api_key = "key-az"
backend_type = "azure"
api_version = "2024-10-21"
models = ["dep-1"]

[providers.an]
name = "Anthropic"
base_url = %[4]q
api_key = "key-an"
backend_type = "anthropic"
models = ["claude-up"]

[models.gpt]
name = "gpt"
aliases = ["gpt-latest"]
strategy = "round_robin"
[[models.gpt.backends]]
provider = "a"
model = "gpt-up"
[[models.gpt.backends]]
provider = "b"
model = "gpt-up"

[models.azure]
name = "azure-gpt"
[[models.azure.backends]]
provider = "az"
model = "dep-1"

[models.claude]
name = "claude"
[[models.claude.backends]]
provider = "an"
model = "claude-up"

[users.u]
name = "user"
token = %[5]q
`, a, b, az, an, sdkToken)
}

func TestResponsesAPIThroughEdges(t *testing.T) {
	a := startSim(t, upstreamsim.Options{Name: "A", APIKey: "key-a"})
	b := startSim(t, upstreamsim.Options{Name: "B", APIKey: "key-b"})
	az := startSim(t, upstreamsim.Options{Name: "AZ", APIKey: "key-az"})
	an := startSim(t, upstreamsim.Options{Name: "AN", APIKey: "key-an"})
	cp := startControlPlane(t, t.TempDir())
	edges := []*edge{startEdge(t, cp.addr, "edge-1"), startEdge(t, cp.addr, "edge-2")}
	v := importConfig(t, cp, responsesConfig(a.URL(), b.URL(), strings.TrimSuffix(az.URL(), "/v1"), strings.TrimSuffix(an.URL(), "/v1")))
	clients := make([]openai.Client, len(edges))
	for i, e := range edges {
		e.waitVersion(t, v)
		clients[i] = openai.NewClient(option.WithBaseURL(e.url+"/v1"), option.WithAPIKey(sdkToken), option.WithMaxRetries(0))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	input := func(s string) responses.ResponseNewParamsInputUnion {
		return responses.ResponseNewParamsInputUnion{OfString: openai.String(s)}
	}

	t.Run("a conversation moves between edges and stays on its account", func(t *testing.T) {
		first, err := clients[0].Responses.New(ctx, responses.ResponseNewParams{Model: "gpt", Input: input("hello")})
		if err != nil {
			t.Fatal(err)
		}
		account := "A"
		if strings.Contains(first.OutputText(), "from B") {
			account = "B"
		}
		prev := first.ID
		for turn := 2; turn <= 6; turn++ {
			c := clients[turn%2] // edge 1, edge 2, edge 1, …
			params := responses.ResponseNewParams{Model: "gpt-latest", Input: input("and then?"), PreviousResponseID: openai.String(prev)}
			var text, id string
			if turn%3 == 0 { // some turns streamed
				stream := c.Responses.NewStreaming(ctx, params)
				var deltas strings.Builder
				for stream.Next() {
					ev := stream.Current()
					switch ev.Type {
					case "response.output_text.delta":
						deltas.WriteString(ev.Delta.OfString)
					case "response.completed":
						id = ev.Response.ID
						text = ev.Response.OutputText()
					}
				}
				if err := stream.Err(); err != nil {
					t.Fatalf("turn %d stream: %v", turn, err)
				}
				if deltas.String() != text {
					t.Fatalf("turn %d: deltas %q, completed text %q", turn, deltas.String(), text)
				}
			} else {
				r, err := c.Responses.New(ctx, params)
				if err != nil {
					t.Fatalf("turn %d: %v", turn, err)
				}
				text, id = r.OutputText(), r.ID
			}
			if want := upstreamsim.ResponsesReply(account, turn); text != want {
				t.Fatalf("turn %d: %q, want %q (the conversation left its account)", turn, text, want)
			}
			prev = id
		}
		// Retrieve and delete the last one through the other edge.
		got, err := clients[1].Responses.Get(ctx, prev, responses.ResponseGetParams{})
		if err != nil || got.ID != prev || got.OutputText() != upstreamsim.ResponsesReply(account, 6) {
			t.Fatalf("retrieve: %v %+v", err, got)
		}
		page, err := clients[0].Responses.InputItems.List(ctx, prev, responses.InputItemListParams{})
		if err != nil || len(page.Data) == 0 {
			t.Fatalf("input items: %v %+v", err, page)
		}
		if err := clients[0].Responses.Delete(ctx, prev); err != nil {
			t.Fatalf("delete: %v", err)
		}
		_, err = clients[1].Responses.Get(ctx, prev, responses.ResponseGetParams{})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
			t.Fatalf("retrieving a deleted response: %v", err)
		}
	})

	t.Run("Azure, native on its v1 surface", func(t *testing.T) {
		r, err := clients[0].Responses.New(ctx, responses.ResponseNewParams{Model: "azure-gpt", Input: input("hi")})
		if err != nil || !strings.Contains(r.OutputText(), "AZ") {
			t.Fatalf("%v %+v", err, r)
		}
		next, err := clients[1].Responses.New(ctx, responses.ResponseNewParams{Model: "azure-gpt", Input: input("more"), PreviousResponseID: openai.String(r.ID)})
		if err != nil || next.OutputText() != upstreamsim.ResponsesReply("AZ", 2) {
			t.Fatalf("%v %+v", err, next)
		}
		if uri := az.Stats().LastURI; !strings.HasPrefix(uri, "/openai/v1/responses") {
			t.Errorf("Azure was called at %s", uri)
		}
	})

	t.Run("Anthropic, translated and stateless", func(t *testing.T) {
		r, err := clients[0].Responses.New(ctx, responses.ResponseNewParams{Model: "claude", Input: input("hi"),
			Instructions: openai.String("be brief")})
		if err != nil || !strings.Contains(r.OutputText(), "AN") || r.Usage.OutputTokens == 0 {
			t.Fatalf("%v %+v", err, r)
		}
		stream := clients[1].Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "claude", Input: input("hi")})
		var deltas strings.Builder
		completed := false
		for stream.Next() {
			ev := stream.Current()
			deltas.WriteString(ev.Delta.OfString)
			completed = completed || ev.Type == "response.completed"
		}
		if err := stream.Err(); err != nil || !completed || !strings.Contains(deltas.String(), "AN") {
			t.Fatalf("stream: %v completed=%v %q", err, completed, deltas.String())
		}
		_, err = clients[1].Responses.Get(ctx, r.ID, responses.ResponseGetParams{})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "response_not_stored" {
			t.Fatalf("retrieving a translated response: %v", err)
		}
	})
}

// Aliases, provider-addressed names, fallbacks and session affinity through two real
// edges: the same session lands on the same account from either edge, and moves only
// when that account fails.
func TestRoutingFeaturesThroughEdges(t *testing.T) {
	sims := map[string]*upstreamsim.Server{}
	var providers, backends strings.Builder
	for _, id := range []string{"p1", "p2", "p3"} {
		sims[id] = startSim(t, upstreamsim.Options{Name: id})
		fmt.Fprintf(&providers, "[providers.%s]\nname = %q\nbase_url = %q\nmodels = [\"up\"]\n", id, id, sims[id].URL())
		fmt.Fprintf(&backends, "[[models.chat.backends]]\nprovider = %q\nmodel = \"up\"\n", id)
	}
	long := startSim(t, upstreamsim.Options{Name: "long", FailStatus: 400, FailCode: "context_length_exceeded"})
	doc := providers.String() + fmt.Sprintf(`
[settings]
circuit_breaker_failure_threshold = 1
[providers.long]
name = "long"
base_url = %q
models = ["small"]
[models.chat]
name = "chat"
aliases = ["chat-latest"]
strategy = "round_robin"
affinity = "header:X-Session-Id"
%s
[models.small]
name = "small"
fallbacks = { context_window = "chat" }
[[models.small.backends]]
provider = "long"
model = "small"
[models.direct]
name = "direct"
wildcard = "p3/*"
[users.u]
name = "user"
token = %q
`, long.URL(), backends.String(), sdkToken)
	cp := startControlPlane(t, t.TempDir())
	edges := []*edge{startEdge(t, cp.addr, "edge-1"), startEdge(t, cp.addr, "edge-2")}
	v := importConfig(t, cp, doc)
	for _, e := range edges {
		e.waitVersion(t, v)
	}
	send := func(e *edge, model, session string) (string, string) {
		opts := []option.RequestOption{option.WithBaseURL(e.url + "/v1"), option.WithAPIKey(sdkToken), option.WithMaxRetries(0)}
		if session != "" {
			opts = append(opts, option.WithHeader("X-Session-Id", session))
		}
		c := openai.NewClient(opts...)
		var resp *http.Response
		r, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model:    model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		}, option.WithResponseInto(&resp))
		if err != nil {
			t.Fatalf("%s via %s: %v", model, e.url, err)
		}
		for id := range sims {
			if strings.Contains(r.Choices[0].Message.Content, "from "+id) {
				return id, resp.Header.Get("X-Berry-Model")
			}
		}
		return r.Choices[0].Message.Content, resp.Header.Get("X-Berry-Model")
	}
	t.Run("affinity holds across edges and re-pins only the failed account's sessions", func(t *testing.T) {
		pinned := map[string]string{}
		for k := range 12 {
			s := fmt.Sprint("conv-", k)
			first, _ := send(edges[0], "chat", s)
			for i := range 4 {
				if got, _ := send(edges[i%2], "chat-latest", s); got != first {
					t.Fatalf("session %s: %s, then %s on edge %d", s, first, got, i%2+1)
				}
			}
			pinned[s] = first
		}
		victim := pinned["conv-0"]
		sims[victim].SetOptions(upstreamsim.Options{Name: victim, FailStatus: 503})
		defer sims[victim].SetOptions(upstreamsim.Options{Name: victim})
		for s, was := range pinned {
			for _, e := range edges {
				got, _ := send(e, "chat", s)
				if (was == victim) == (got == was) {
					t.Errorf("session %s was on %s (failing: %s), now on %s", s, was, victim, got)
				}
			}
		}
	})
	t.Run("provider-addressed name", func(t *testing.T) {
		if got, model := send(edges[1], "p3/gpt-anything", ""); got != "p3" || model != "direct" {
			t.Fatalf("served by %s as %s", got, model)
		}
		if sent := string(sims["p3"].Stats().LastBody); !strings.Contains(sent, `"model":"gpt-anything"`) {
			t.Fatalf("upstream got %s", sent)
		}
	})
	t.Run("context window fallback", func(t *testing.T) {
		if _, model := send(edges[0], "small", ""); model != "chat" {
			t.Fatalf("X-Berry-Model %q, want the fallback chat", model)
		}
	})
}
