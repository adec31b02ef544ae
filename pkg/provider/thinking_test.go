package provider

import (
	"encoding/json"
	"errors"
	"testing"
)

// Extended thinking and top_k between chat and Anthropic requests (ChatToAnthropic,
// MessagesToChatRequest); the golden files chat_to_anthropic.reasoning,
// chat_to_anthropic.top_k and messages_to_chat.thinking show whole requests.

func TestChatToAnthropicThinking(t *testing.T) {
	type sent struct {
		MaxTokens   int      `json:"max_tokens"`
		Temperature *float64 `json:"temperature"`
		TopP        *float64 `json:"top_p"`
		TopK        *int     `json:"top_k"`
		Thinking    *struct {
			Type         string `json:"type"`
			BudgetTokens int    `json:"budget_tokens"`
		} `json:"thinking"`
	}
	const user = `"messages":[{"role":"user","content":"hi"}]`
	const tools = `"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]`
	for _, tt := range []struct {
		name, body  string
		budget, max int // budget 0: no thinking
		temp, topP  bool
		topK        bool
	}{
		{"low", `{` + user + `,"reasoning_effort":"low"}`, 2048, DefaultMaxTokens, false, false, false},
		{"minimal", `{` + user + `,"reasoning_effort":"minimal","max_tokens":100}`, 1024, 1124, false, false, false},
		{"high raises max_tokens", `{` + user + `,"reasoning_effort":"high","max_tokens":1000}`, 24576, 25576, false, false, false},
		{"room left alone", `{` + user + `,"reasoning_effort":"medium","max_completion_tokens":20000}`, 8192, 20000, false, false, false},
		{"budget equal to max_tokens", `{` + user + `,"reasoning_effort":"low","max_tokens":2048}`, 2048, 4096, false, false, false},
		{"temperature 1 kept", `{` + user + `,"reasoning_effort":"low","temperature":1,"top_p":0.95}`, 2048, DefaultMaxTokens, true, true, false},
		{"sampling dropped", `{` + user + `,"reasoning_effort":"low","temperature":0.3,"top_p":0.5,"top_k":5}`, 2048, DefaultMaxTokens, false, false, false},
		{"none", `{` + user + `,"reasoning_effort":"none","top_k":5}`, 0, DefaultMaxTokens, false, false, true},
		{"no effort", `{` + user + `,"temperature":0.3,"top_k":5}`, 0, DefaultMaxTokens, true, false, true},
		{"auto tool choice", `{` + user + `,` + tools + `,"tool_choice":"auto","reasoning_effort":"low"}`, 2048, DefaultMaxTokens, false, false, false},
		{"forced tool", `{` + user + `,` + tools + `,"tool_choice":"required","reasoning_effort":"low","temperature":0.3}`, 0, DefaultMaxTokens, true, false, false},
		{"named tool", `{` + user + `,` + tools + `,"tool_choice":{"type":"function","function":{"name":"f"}},"reasoning_effort":"low"}`, 0, DefaultMaxTokens, false, false, false},
		{"tool loop goes on without thinking", `{"messages":[{"role":"user","content":"hi"},
			{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
			{"role":"tool","tool_call_id":"c","content":"ok"}],` + tools + `,"reasoning_effort":"high","max_tokens":500}`, 0, 500, false, false, false},
		{"new turn after a tool loop thinks", `{"messages":[{"role":"user","content":"hi"},
			{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
			{"role":"tool","tool_call_id":"c","content":"ok"},{"role":"assistant","content":"done"},{"role":"user","content":"again"}],` +
			tools + `,"reasoning_effort":"low"}`, 2048, DefaultMaxTokens, false, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := ChatToAnthropic(nil, []byte(tt.body), "claude")
			if err != nil {
				t.Fatal(err)
			}
			var s sent
			if err := json.Unmarshal(out, &s); err != nil {
				t.Fatal(err)
			}
			budget := 0
			if s.Thinking != nil {
				if s.Thinking.Type != "enabled" {
					t.Errorf("thinking type %q", s.Thinking.Type)
				}
				budget = s.Thinking.BudgetTokens
			}
			if budget != tt.budget || s.MaxTokens != tt.max || (s.Temperature != nil) != tt.temp || (s.TopP != nil) != tt.topP ||
				(s.TopK != nil) != tt.topK {
				t.Errorf("sent %s", out)
			}
			if budget > 0 && s.MaxTokens <= budget {
				t.Errorf("max_tokens %d does not exceed the budget %d", s.MaxTokens, budget)
			}
		})
	}
	_, err := ChatToAnthropic(nil, []byte(`{`+user+`,"reasoning_effort":"extreme"}`), "claude")
	if !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("unknown effort: %v", err)
	}
}

// TestMessagesToChatDropsTopKAndThinking: OpenAI's chat API refuses both (thinking
// as reasoning_effort on any but reasoning models), and Claude Code asks for thinking
// by default, so neither crosses from Messages to chat.
func TestMessagesToChatDropsTopKAndThinking(t *testing.T) {
	out, err := MessagesToChatRequest(nil, []byte(`{"model":"m","max_tokens":20000,"top_k":7,"thinking":{"type":"enabled","budget_tokens":10000},"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var chat map[string]json.RawMessage
	if err := json.Unmarshal(out, &chat); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"top_k", "reasoning_effort", "thinking"} {
		if _, ok := chat[k]; ok {
			t.Errorf("chat request carries %s: %s", k, out)
		}
	}
}
