package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicopt "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
)

// The SDK tests drive a real berry-edge with the official OpenAI and Anthropic Go SDKs
// as a user would, in front of three simulated upstreams: an OpenAI-compatible one, an
// Azure OpenAI resource and an Anthropic API.

const sdkToken = "berry-sdk-token"

func sdkConfig(openaiURL, azureURL, anthropicURL string) string {
	return fmt.Sprintf(`
[settings]
request_timeout_seconds = 10
max_retries = 2

[providers.oa]
name = "OpenAI sim"
base_url = %[1]q
api_key = "key-oa"
models = ["up-gpt"]

[providers.az]
name = "Azure sim"
base_url = %[2]q
api_key = "key-az"
models = ["dep-1"]
backend_type = "azure"
api_version = "2024-10-21"

# The same resource with a provider header that makes the simulator's content filter
# reject every prompt.
[providers.az-filtered]
name = "Azure sim, filtering"
base_url = %[2]q
api_key = "key-az"
models = ["dep-1"]
backend_type = "azure"
api_version = "2024-10-21"
headers = { "X-Sim-Content-Filter" = "prompt" }

[providers.an]
name = "Anthropic sim"
base_url = %[3]q
api_key = "key-an"
models = ["claude-up"]
backend_type = "anthropic"

[models.gpt]
name = "gpt"
[[models.gpt.backends]]
provider = "oa"
model = "up-gpt"

[models.azure]
name = "azure-gpt"
[[models.azure.backends]]
provider = "az"
model = "dep-1"

[models.azure-filtered]
name = "azure-filtered"
[[models.azure-filtered.backends]]
provider = "az-filtered"
model = "dep-1"

[models.claude]
name = "claude"
[[models.claude.backends]]
provider = "an"
model = "claude-up"

[users.sdk]
name = "SDK user"
token = %[4]q
`, openaiURL, azureURL, anthropicURL, sdkToken)
}

type sdkEnv struct {
	edge       *edge
	oa, az, an *upstreamsim.Server
	openai     openai.Client
	anthropic  anthropic.Client
}

func startSDKEnv(t *testing.T) *sdkEnv {
	t.Helper()
	env := &sdkEnv{
		oa: startSim(t, upstreamsim.Options{Name: "oa", APIKey: "key-oa", Chunks: 3}),
		az: startSim(t, upstreamsim.Options{Name: "az", APIKey: "key-az", Chunks: 3, Models: []string{"dep-1"}}),
		an: startSim(t, upstreamsim.Options{Name: "an", APIKey: "key-an", Chunks: 3, Models: []string{"claude-up"}}),
	}
	cp := startControlPlane(t, t.TempDir())
	env.edge = startEdge(t, cp.addr, "sdk")
	v := importConfig(t, cp, sdkConfig(env.oa.URL(), env.az.AzureURL(), env.an.AnthropicURL()))
	env.edge.waitVersion(t, v)
	env.openai = openai.NewClient(option.WithBaseURL(env.edge.url+"/v1/"), option.WithAPIKey(sdkToken),
		option.WithMaxRetries(0), option.WithRequestTimeout(20*time.Second))
	env.anthropic = anthropic.NewClient(anthropicopt.WithBaseURL(env.edge.url), anthropicopt.WithAPIKey(sdkToken),
		anthropicopt.WithMaxRetries(0), anthropicopt.WithRequestTimeout(20*time.Second))

	return env
}

func weatherTool() openai.ChatCompletionToolParam {
	return openai.ChatCompletionToolParam{Function: openai.FunctionDefinitionParam{
		Name:        "get_weather",
		Description: openai.String("Current weather in a city"),
		Parameters: openai.FunctionParameters{
			"type":       "object",
			"properties": map[string]any{"city": map[string]any{"type": "string"}},
			"required":   []string{"city"},
		},
	}}
}

func TestOpenAISDK(t *testing.T) {
	env := startSDKEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// upstream is the model the simulator saw, as it appears in its reply.
	models := []struct{ model, sim, upstream string }{
		{"gpt", "oa", "up-gpt"},
		{"azure-gpt", "az", "dep-1"},
		{"claude", "an", "claude-up"},
	}
	for _, m := range models {
		want := upstreamsim.Reply(m.sim, m.upstream)
		t.Run(m.model+"/non-stream", func(t *testing.T) {
			c, err := env.openai.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    m.model,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("hi there")},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Choices) != 1 || c.Choices[0].Message.Content != want || c.Choices[0].FinishReason != "stop" ||
				c.Usage.TotalTokens == 0 || c.Usage.TotalTokens != c.Usage.PromptTokens+c.Usage.CompletionTokens {
				t.Errorf("completion %+v", c)
			}
		})
		t.Run(m.model+"/stream", func(t *testing.T) {
			s := env.openai.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model:         m.model,
				Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi there")},
				StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
			})
			var acc openai.ChatCompletionAccumulator
			chunks := 0
			for s.Next() {
				if !acc.AddChunk(s.Current()) {
					t.Fatalf("accumulator refused chunk %s", s.Current().RawJSON())
				}
				chunks++
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			if chunks < 3 || len(acc.Choices) != 1 || acc.Choices[0].Message.Content != want || acc.Choices[0].FinishReason != "stop" {
				t.Errorf("%d chunks, accumulated %+v", chunks, acc.ChatCompletion)
			}
		})
		t.Run(m.model+"/tool round trip", func(t *testing.T) {
			for _, stream := range []bool{false, true} {
				params := openai.ChatCompletionNewParams{
					Model:    m.model,
					Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Paris?")},
					Tools:    []openai.ChatCompletionToolParam{weatherTool()},
				}
				var first openai.ChatCompletion
				if stream {
					s := env.openai.Chat.Completions.NewStreaming(ctx, params)
					var acc openai.ChatCompletionAccumulator
					for s.Next() {
						acc.AddChunk(s.Current())
					}
					if err := s.Err(); err != nil {
						t.Fatal(err)
					}
					first = acc.ChatCompletion
				} else {
					c, err := env.openai.Chat.Completions.New(ctx, params)
					if err != nil {
						t.Fatal(err)
					}
					first = *c
				}
				if len(first.Choices) != 1 || len(first.Choices[0].Message.ToolCalls) != 1 {
					t.Fatalf("stream=%v: no tool call: %+v", stream, first)
				}
				call := first.Choices[0].Message.ToolCalls[0]
				if call.Function.Name != "get_weather" || call.Function.Arguments != `{"city":"`+upstreamsim.ToolArgument+`"}` ||
					call.ID == "" || first.Choices[0].FinishReason != "tool_calls" {
					t.Fatalf("stream=%v: tool call %+v finish %q", stream, call, first.Choices[0].FinishReason)
				}
				params.Messages = append(params.Messages, first.Choices[0].Message.ToParam(), openai.ToolMessage("sunny, 21C", call.ID))
				c, err := env.openai.Chat.Completions.New(ctx, params)
				if err != nil {
					t.Fatal(err)
				}
				if got := c.Choices[0].Message.Content; got != want+"; tool result: sunny, 21C" {
					t.Errorf("stream=%v: answer after the tool result: %q", stream, got)
				}
			}
		})
	}

	t.Run("provider keys, not the client's", func(t *testing.T) {
		if h := env.az.Stats().LastHeader; h.Get("api-key") != "key-az" || h.Get("Authorization") != "" {
			t.Errorf("Azure upstream saw api-key %q Authorization %q", h.Get("api-key"), h.Get("Authorization"))
		}
		if uri := env.az.Stats().LastURI; uri != "/openai/deployments/dep-1/chat/completions?api-version=2024-10-21" {
			t.Errorf("Azure upstream URI %q", uri)
		}
		h := env.an.Stats().LastHeader
		if h.Get("x-api-key") != "key-an" || h.Get("anthropic-version") == "" || h.Get("Authorization") != "" {
			t.Errorf("Anthropic upstream saw x-api-key %q anthropic-version %q Authorization %q",
				h.Get("x-api-key"), h.Get("anthropic-version"), h.Get("Authorization"))
		}
	})

	t.Run("Anthropic overloaded is a 5xx the SDK sees as a server error", func(t *testing.T) {
		env.an.SetOptions(upstreamsim.Options{Name: "an", APIKey: "key-an", FailStatus: 529})
		defer env.an.SetOptions(upstreamsim.Options{Name: "an", APIKey: "key-an", Chunks: 3, Models: []string{"claude-up"}})
		_, err := env.openai.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "claude", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode < 500 || !strings.Contains(apiErr.Message, "Overloaded") && !strings.Contains(apiErr.RawJSON(), "overloaded") {
			t.Errorf("error %v", err)
		}
	})

	t.Run("Azure content filter reaches the client intelligibly", func(t *testing.T) {
		_, err := env.openai.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "azure-filtered", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "content_filter" || !strings.Contains(apiErr.RawJSON(), "content_filter_result") {
			t.Errorf("error %v", err)
		}
	})

	t.Run("embeddings and legacy completions", func(t *testing.T) {
		for _, m := range []struct{ model, sim, upstream string }{{"gpt", "oa", "up-gpt"}, {"azure-gpt", "az", "dep-1"}} {
			e, err := env.openai.Embeddings.New(ctx, openai.EmbeddingNewParams{
				Model: m.model, Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(e.Data) != 2 || len(e.Data[0].Embedding) == 0 || e.Model != m.upstream {
				t.Errorf("%s embeddings %+v", m.model, e)
			}
			c, err := env.openai.Completions.New(ctx, openai.CompletionNewParams{
				Model: openai.CompletionNewParamsModel(m.model), Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("once")},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Choices) != 1 || c.Choices[0].Text != upstreamsim.Reply(m.sim, m.upstream) {
				t.Errorf("%s completion %+v", m.model, c)
			}
		}
		if uri := env.az.Stats().LastURI; uri != "/openai/deployments/dep-1/completions?api-version=2024-10-21" {
			t.Errorf("Azure completions URI %q", uri)
		}
		_, err := env.openai.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "claude", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("a")},
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
			t.Errorf("embeddings on an Anthropic backend: %v, want a 400", err)
		}
	})
}

func TestAnthropicSDK(t *testing.T) {
	env := startSDKEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tool := anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
		Name:        "get_weather",
		Description: anthropic.String("Current weather in a city"),
		InputSchema: anthropic.ToolInputSchemaParam{
			Properties: map[string]any{"city": map[string]any{"type": "string"}},
			Required:   []string{"city"},
		},
	}}
	models := []struct{ model, sim, upstream string }{
		{"claude", "an", "claude-up"}, // passed through natively
		{"gpt", "oa", "up-gpt"},       // translated to OpenAI chat and back
		{"azure-gpt", "az", "dep-1"},
	}
	for _, m := range models {
		want := upstreamsim.Reply(m.sim, m.upstream)
		params := anthropic.MessageNewParams{
			Model: anthropic.Model(m.model), MaxTokens: 256,
			System:   []anthropic.TextBlockParam{{Text: "be brief"}},
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi there"))},
		}
		t.Run(m.model+"/non-stream", func(t *testing.T) {
			msg, err := env.anthropic.Messages.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if len(msg.Content) != 1 || msg.Content[0].Text != want || msg.StopReason != anthropic.StopReasonEndTurn || msg.Usage.OutputTokens == 0 {
				t.Errorf("message %+v", msg)
			}
		})
		t.Run(m.model+"/stream", func(t *testing.T) {
			s := env.anthropic.Messages.NewStreaming(ctx, params)
			var acc anthropic.Message
			for s.Next() {
				if err := acc.Accumulate(s.Current()); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			if len(acc.Content) != 1 || acc.Content[0].Text != want || acc.StopReason != anthropic.StopReasonEndTurn {
				t.Errorf("accumulated %+v", acc)
			}
		})
		t.Run(m.model+"/tool round trip", func(t *testing.T) {
			p := params
			p.Tools = []anthropic.ToolUnionParam{tool}
			msg, err := env.anthropic.Messages.New(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			var use anthropic.ToolUseBlock
			for _, b := range msg.Content {
				if u, ok := b.AsAny().(anthropic.ToolUseBlock); ok {
					use = u
				}
			}
			if use.Name != "get_weather" || string(use.Input) != `{"city":"`+upstreamsim.ToolArgument+`"}` || msg.StopReason != anthropic.StopReasonToolUse {
				t.Fatalf("tool use %+v stop %q", use, msg.StopReason)
			}
			p.Messages = append(p.Messages, msg.ToParam(),
				anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, "sunny, 21C", false)))
			msg, err = env.anthropic.Messages.New(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(msg.Content) == 0 || msg.Content[0].Text != want+"; tool result: sunny, 21C" {
				t.Errorf("answer after the tool result: %+v", msg.Content)
			}
		})
		t.Run(m.model+"/streamed tool use", func(t *testing.T) {
			p := params
			p.Tools = []anthropic.ToolUnionParam{tool}
			s := env.anthropic.Messages.NewStreaming(ctx, p)
			var acc anthropic.Message
			for s.Next() {
				if err := acc.Accumulate(s.Current()); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			var use anthropic.ToolUseBlock
			for _, b := range acc.Content {
				if u, ok := b.AsAny().(anthropic.ToolUseBlock); ok {
					use = u
				}
			}
			if use.Name != "get_weather" || string(use.Input) != `{"city":"`+upstreamsim.ToolArgument+`"}` || acc.StopReason != anthropic.StopReasonToolUse {
				t.Fatalf("streamed tool use %+v stop %q", use, acc.StopReason)
			}
		})
	}
	t.Run("errors reach the SDK as typed API errors", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			client anthropic.Client
			model  string
			status int
		}{
			{"unknown model", env.anthropic, "no-such-model", http.StatusNotFound},
			{"bad key", anthropic.NewClient(anthropicopt.WithBaseURL(env.edge.url), anthropicopt.WithAPIKey("wrong"),
				anthropicopt.WithMaxRetries(0)), "claude", http.StatusUnauthorized},
		} {
			_, err := tc.client.Messages.New(ctx, anthropic.MessageNewParams{Model: anthropic.Model(tc.model), MaxTokens: 16,
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
			var apiErr *anthropic.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status || !strings.Contains(apiErr.RawJSON(), `"type":"error"`) {
				t.Errorf("%s: %v, want an API error with status %d in Anthropic's shape", tc.name, err, tc.status)
			}
		}
	})
}
