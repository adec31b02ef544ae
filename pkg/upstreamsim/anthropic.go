package upstreamsim

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// Anthropic Messages API dialect:
//
//	POST /v1/messages                (x-api-key and anthropic-version headers required)
//	POST /v1/messages/count_tokens   (the same, see counttokens.go)
//	GET  /v1/models                  (when the request carries anthropic-version or x-api-key)
//
// Answers use Anthropic's shapes: a message with content blocks (text, or tool_use when
// the request offers tools, see tools.go), the stream event sequence message_start,
// content_block_start, ping, content_block_delta…, content_block_stop, message_delta,
// message_stop, and errors {"type":"error","error":{"type","message"}} with the
// statuses Anthropic uses, 529 overloaded_error included. The X-Sim-Stream-Error-After
// request header makes a stream send that many events and then an overloaded_error
// event, as Anthropic does when it runs out of capacity mid-answer.

// AnthropicURL is the simulator's Anthropic base URL (the base_url of a claude or
// anthropic provider).
func (s *Server) AnthropicURL() string { return "http://" + s.Addr() }

func isAnthropic(h *fasthttp.RequestHeader) bool {
	return h.Peek("anthropic-version") != nil || h.Peek("x-api-key") != nil
}

type anSimRequest struct {
	Model     string `json:"model"`
	MaxTokens *int   `json:"max_tokens"`
	Stream    bool   `json:"stream"`
	Messages  []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	System json.RawMessage `json:"system"`
	Tools  []struct {
		Name        string          `json:"name"`
		InputSchema json.RawMessage `json:"input_schema"`
	} `json:"tools"`
	ToolChoice *struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"tool_choice"`
}

type anSimBlock struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

type anSimUsage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

type anSimMessage struct {
	ID           string       `json:"id"`
	Type         string       `json:"type"`
	Role         string       `json:"role"`
	Model        string       `json:"model"`
	Content      []anSimBlock `json:"content"`
	StopReason   *string      `json:"stop_reason"`
	StopSequence *string      `json:"stop_sequence"`
	Usage        anSimUsage   `json:"usage"`
}

// AnthropicErrorType is the error type Anthropic sends with an HTTP status.
func AnthropicErrorType(status int) string {
	switch status {
	case 400:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 402:
		return "billing_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 504:
		return "timeout_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

func (s *Server) handleAnthropic(ctx *fasthttp.RequestCtx, path string) {
	kind := kindOther
	if path == "/v1/messages" && ctx.IsPost() {
		kind = kindChat
	}
	s.record(ctx, kind)
	o, err := requestOptions(*s.opts.Load(), &ctx.Request.Header)
	ctx.Response.Header.Set("X-Sim-Name", o.Name)
	ctx.Response.Header.Set("request-id", "req_"+s.newID())
	if err != nil {
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	if !pause(o.Latency, s.done) {
		writeAnthropicError(ctx, StatusOverloaded, "simulator is shutting down")
		return
	}
	h := &ctx.Request.Header
	if o.APIKey != "" && string(h.Peek("x-api-key")) != o.APIKey {
		writeAnthropicError(ctx, fasthttp.StatusUnauthorized, "invalid x-api-key")
		return
	}
	if len(h.Peek("anthropic-version")) == 0 {
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, "anthropic-version: header is required")
		return
	}
	method := fasthttp.MethodPost
	if path == "/v1/models" {
		method = fasthttp.MethodGet
	}
	if string(ctx.Method()) != method {
		writeAnthropicError(ctx, fasthttp.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	if o.FailStatus != 0 {
		msg := "simulated " + strconv.Itoa(o.FailStatus) + " from " + o.Name
		if o.FailStatus == StatusOverloaded {
			msg = "Overloaded"
		}
		typ := AnthropicErrorType(o.FailStatus)
		switch {
		case o.FailStatus == fasthttp.StatusBadRequest && o.FailCode == FailCodeContextLength:
			msg = "prompt is too long: 250000 tokens > 200000 maximum"
		case o.FailCode != "":
			typ = o.FailCode // Anthropic's errors have no code; their type is the class
		}
		writeJSON(ctx, o.FailStatus, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
		return
	}
	switch path {
	case "/v1/models":
		s.anthropicModels(ctx, &o)
	case "/v1/messages/count_tokens":
		s.countTokens(ctx, &o)
	default:
		s.messages(ctx, &o)
	}
}

// StatusOverloaded is the status Anthropic answers with when it is overloaded.
const StatusOverloaded = 529

func (s *Server) anthropicModels(ctx *fasthttp.RequestCtx, o *Options) {
	ids := o.Models
	if len(ids) == 0 {
		ids = []string{DefaultModel}
	}
	data := make([]map[string]any, len(ids))
	for i, id := range ids {
		data[i] = map[string]any{"type": "model", "id": id, "display_name": id, "created_at": "2025-02-19T00:00:00Z"}
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"data": data, "has_more": false, "first_id": ids[0], "last_id": ids[len(ids)-1],
	})
}

func (s *Server) messages(ctx *fasthttp.RequestCtx, o *Options) {
	var req anSimRequest
	if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	switch {
	case req.Model == "":
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, "model: Field required")
		return
	case req.MaxTokens == nil:
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, "max_tokens: Field required")
		return
	case len(req.Messages) == 0:
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, "messages: at least one message is required")
		return
	}
	s.countModel(req.Model)
	if len(o.Models) > 0 && !slices.Contains(o.Models, req.Model) {
		writeAnthropicError(ctx, fasthttp.StatusNotFound, "model: "+req.Model)
		return
	}

	prompt := words(req.System)
	lastIsToolResult := false
	var lastResult string
	for _, m := range req.Messages {
		prompt += words(m.Content)
		var blocks []struct {
			Type    string          `json:"type"`
			Content json.RawMessage `json:"content"`
		}
		lastIsToolResult = false
		if m.Role == "user" && json.Unmarshal(m.Content, &blocks) == nil {
			for _, b := range blocks {
				if b.Type == "tool_result" {
					lastIsToolResult, lastResult = true, contentText(b.Content)
				}
			}
		}
	}
	text := Reply(o.Name, req.Model)
	var tool *anSimBlock
	if lastIsToolResult {
		text += "; tool result: " + lastResult
	} else {
		tools := make([]simTool, len(req.Tools))
		for i, t := range req.Tools {
			tools[i] = simTool{Name: t.Name, Parameters: t.InputSchema}
		}
		choice := ""
		if tc := req.ToolChoice; tc != nil {
			choice = tc.Name
			if tc.Type == "none" {
				choice = "none"
			}
		}
		if t, ok := chooseTool(tools, choice); ok {
			tool = &anSimBlock{Type: "tool_use", ID: "toolu_" + s.newID(), Name: t.Name,
				Input: json.RawMessage(toolArguments(t.Parameters))}
		}
	}
	stop := "end_turn"
	content := []anSimBlock{{Type: "text", Text: &text}}
	output := len(strings.Fields(text))
	if tool != nil {
		stop = "tool_use"
		content = []anSimBlock{*tool}
		output = len(strings.Fields(string(tool.Input))) + 1
	}
	msg := anSimMessage{ID: "msg_" + s.newID(), Type: "message", Role: "assistant", Model: req.Model,
		Content: content, StopReason: &stop, Usage: anSimUsage{InputTokens: prompt, OutputTokens: output}}
	if !req.Stream {
		writeJSON(ctx, fasthttp.StatusOK, msg)
		return
	}

	start := msg
	start.Content, start.StopReason, start.Usage.OutputTokens = []anSimBlock{}, nil, 1
	events := [][]byte{anEvent("message_start", map[string]any{"type": "message_start", "message": start})}
	block := func(b anSimBlock, deltas []map[string]any) {
		events = append(events, anEvent("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": b}))
		if len(events) == 2 {
			events = append(events, anEvent("ping", map[string]any{"type": "ping"}))
		}
		for _, d := range deltas {
			events = append(events, anEvent("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": d}))
		}
		events = append(events, anEvent("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}))
	}
	if tool != nil {
		var deltas []map[string]any
		for _, p := range split(string(tool.Input), 2) {
			deltas = append(deltas, map[string]any{"type": "input_json_delta", "partial_json": p})
		}
		head := *tool
		head.Input = json.RawMessage(`{}`)
		block(head, deltas)
	} else {
		var deltas []map[string]any
		for _, p := range split(text, o.Chunks) {
			deltas = append(deltas, map[string]any{"type": "text_delta", "text": p})
		}
		empty := ""
		block(anSimBlock{Type: "text", Text: &empty}, deltas)
	}
	events = append(events, anEvent("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]any{"output_tokens": output}}))
	tail := anEvent("message_stop", map[string]any{"type": "message_stop"})
	if v := ctx.Request.Header.Peek("X-Sim-Stream-Error-After"); v != nil {
		n, err := fasthttp.ParseUint(v)
		if err != nil {
			writeAnthropicError(ctx, fasthttp.StatusBadRequest, "invalid X-Sim-Stream-Error-After header")
			return
		}
		events = events[:min(n, len(events))]
		tail = anEvent("error", map[string]any{"type": "error", "error": map[string]any{"type": "overloaded_error", "message": "Overloaded"}})
	}
	s.stream(ctx, o, events, tail)
}

func anEvent(name string, v any) []byte {
	b, _ := json.Marshal(v) // our values always encode
	return append(append(append([]byte("event: "+name+"\n"), "data: "...), b...), "\n\n"...)
}

// writeAnthropicError writes {"type":"error","error":{"type","message"}} with the
// type Anthropic uses for status.
func writeAnthropicError(ctx *fasthttp.RequestCtx, status int, msg string) {
	writeJSON(ctx, status, map[string]any{
		"type":  "error",
		"error": map[string]any{"type": AnthropicErrorType(status), "message": msg},
	})
}
