package upstreamsim

import (
	"encoding/json"
	"slices"
	"strings"
)

// Tool calling, shared by the OpenAI, Azure and Anthropic dialects: when a request
// offers tools (and does not forbid them) and its last message is not a tool result,
// the simulator calls a tool — the named one, else the first — with arguments made
// from the tool's JSON schema; once a tool result comes back it answers with text that
// quotes the result, so a client can run a whole tool round trip.

type simTool struct {
	Name string `json:"name"`
	// Parameters is the JSON schema (OpenAI "parameters", Anthropic "input_schema").
	Parameters json.RawMessage `json:"parameters"`
}

// chooseTool picks the tool to call; choice is "none", a tool name, or "" for any.
func chooseTool(tools []simTool, choice string) (simTool, bool) {
	if len(tools) == 0 || choice == "none" {
		return simTool{}, false
	}
	for _, t := range tools {
		if t.Name == choice {
			return t, true
		}
	}
	return tools[0], true
}

// ToolArgument is the value the simulator passes for every required string parameter.
const ToolArgument = "sim"

// toolArguments builds a JSON object with a value for every required property of the
// schema: ToolArgument for strings, 1 for numbers, true for booleans.
func toolArguments(schema json.RawMessage) string {
	var s struct {
		Properties map[string]struct {
			Type string `json:"type"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	_ = json.Unmarshal(schema, &s)
	args := make(map[string]any, len(s.Required))
	for _, name := range slices.Sorted(slices.Values(s.Required)) {
		switch s.Properties[name].Type {
		case "number", "integer":
			args[name] = 1
		case "boolean":
			args[name] = true
		default:
			args[name] = ToolArgument
		}
	}
	b, _ := json.Marshal(args) // maps encode with sorted keys
	return string(b)
}

// contentText flattens message content (a string, or an array of parts or blocks with
// "text" or nested "content") to text.
func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text    string          `json:"text"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
		if len(p.Content) > 0 {
			b.WriteString(contentText(p.Content))
		}
	}
	return b.String()
}
