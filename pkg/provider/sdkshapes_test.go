package provider

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"testing"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/openai/openai-go"

	"github.com/berry-gateway/berry/pkg/sse"
)

// These tests read the translators' output with the official SDKs' own types and
// stream accumulators, so a shape the SDKs would misread fails here even if the golden
// files were recorded wrong.

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/golden/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenAISDKReadsAnthropicTranslation(t *testing.T) {
	fixedNow(t)
	out, err := AnthropicToChat(nil, golden(t, "anthropic_to_chat.tool_use.in.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c openai.ChatCompletion
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	m := c.Choices[0].Message
	if m.Content != "I'll check the current weather in San Francisco for you." || len(m.ToolCalls) != 1 ||
		m.ToolCalls[0].ID != "toolu_01A09q90qw90lq917835lq9" || m.ToolCalls[0].Function.Name != "get_weather" ||
		m.ToolCalls[0].Function.Arguments != `{"location":"San Francisco, CA","unit":"celsius"}` ||
		c.Choices[0].FinishReason != "tool_calls" || c.Usage.PromptTokens != 472 || c.Usage.TotalTokens != 561 {
		t.Errorf("SDK read %+v", c)
	}

	for _, tt := range []struct {
		file, content, args, finish string
		prompt, completion          int64
	}{
		{"anthropic_to_chat.stream_text.in.sse", "Hello!", "", "stop", 25, 15},
		{"anthropic_to_chat.stream_tools.in.sse", "Okay, let's check the weather.", `{"location": "San Francisco, CA"}`, "tool_calls", 472, 89},
	} {
		stream := runStream(t, NewAnthropicToChatStream("m"), golden(t, tt.file), (*Error).AppendSSE)
		var acc openai.ChatCompletionAccumulator
		r := sse.NewReader(bytes.NewReader(stream), 0)
		for {
			_, data, err := r.Next()
			if err == io.EOF {
				break
			}
			if string(data) == "[DONE]" {
				continue
			}
			var chunk openai.ChatCompletionChunk
			if err := json.Unmarshal(data, &chunk); err != nil {
				t.Fatal(err)
			}
			if !acc.AddChunk(chunk) {
				t.Fatalf("%s: accumulator refused chunk %s", tt.file, data)
			}
		}
		m := acc.Choices[0].Message
		args := ""
		if len(m.ToolCalls) > 0 {
			args = m.ToolCalls[0].Function.Arguments
		}
		if m.Content != tt.content || args != tt.args || acc.Choices[0].FinishReason != tt.finish ||
			acc.Usage.PromptTokens != tt.prompt || acc.Usage.CompletionTokens != tt.completion {
			t.Errorf("%s: accumulated %q args %q finish %q usage %+v", tt.file, m.Content, args, acc.Choices[0].FinishReason, acc.Usage)
		}
	}
}

func TestAnthropicSDKReadsMessagesTranslation(t *testing.T) {
	out, err := ChatToMessagesResponse(nil, golden(t, "chat_to_messages.tool_calls.in.json"), "claude-sonnet-4-5")
	if err != nil {
		t.Fatal(err)
	}
	var m sdk.Message
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Content) != 2 || m.StopReason != sdk.StopReasonToolUse || m.Usage.InputTokens != 18 || m.Usage.CacheReadInputTokens != 64 {
		t.Fatalf("SDK read %+v", m)
	}
	tu, ok := m.Content[0].AsAny().(sdk.ToolUseBlock)
	if !ok || tu.Name != "get_current_weather" || string(tu.Input) != `{"location":"Boston, MA"}` {
		t.Errorf("first block %+v", m.Content[0])
	}

	for _, tt := range []struct {
		file   string
		blocks []string // block types in order
		text   string
		input  string // last tool_use input
		stop   sdk.StopReason
		in     int64
		out    int64
	}{
		{"chat_to_messages.stream_text.in.sse", []string{"text"}, "Hello there", "", sdk.StopReasonEndTurn, 9, 2},
		{"chat_to_messages.stream_tools.in.sse", []string{"text", "tool_use", "tool_use"}, "Let me check.", `{}`, sdk.StopReasonToolUse, 50, 20},
	} {
		stream := runStream(t, NewChatToMessagesStream("claude-sonnet-4-5"), golden(t, tt.file), (*Error).AppendMessagesSSE)
		var acc sdk.Message
		r := sse.NewReader(bytes.NewReader(stream), 0)
		stopped := false
		for {
			name, data, err := r.Next()
			if err == io.EOF {
				break
			}
			var ev sdk.MessageStreamEventUnion
			if err := json.Unmarshal(data, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Type != string(name) {
				t.Errorf("event name %q carries type %q", name, ev.Type)
			}
			if err := acc.Accumulate(ev); err != nil {
				t.Fatalf("%s: Accumulate(%s): %v", tt.file, data, err)
			}
			stopped = ev.Type == "message_stop"
		}
		if !stopped {
			t.Errorf("%s: stream does not end with message_stop", tt.file)
		}
		var types []string
		text, input := "", ""
		for _, b := range acc.Content {
			types = append(types, b.Type)
			switch v := b.AsAny().(type) {
			case sdk.TextBlock:
				text += v.Text
			case sdk.ToolUseBlock:
				input = string(v.Input)
			}
		}
		if len(types) != len(tt.blocks) || text != tt.text || input != tt.input || acc.StopReason != tt.stop ||
			acc.Usage.InputTokens != tt.in || acc.Usage.OutputTokens != tt.out {
			t.Errorf("%s: accumulated blocks %v text %q input %q stop %q usage %+v", tt.file, types, text, input, acc.StopReason, acc.Usage)
		}
	}
}
