package provider

// Inbound Anthropic: the edge's POST /v1/messages serves the Anthropic Messages API
// (for the Anthropic SDKs and tools such as Claude Code) in front of any backend.
//
// How the proxy uses it (edge/internal/proxy/messages.go), for a backend whose adapter
// is not NativeMessages:
//
//	chat, err := provider.MessagesToChatRequest(buf[:0], clientBody)
//	// err wraps ErrInvalidRequest: answer 400 with AppendMessagesError.
//	// Otherwise route chat like a /v1/chat/completions body (jsonscan.Scan, model
//	// lookup, failover) and send it with the backend adapter's WriteRequest(OpChat).
//	// Before translating the answer back, run the adapter's own TranslateResponse or
//	// NewStream first if it has one, so the input here is always OpenAI's format:
//	out, err := provider.ChatToMessagesResponse(dst[:0], openAIBody, clientModel) // 2xx
//	out := provider.OpenAIErrorToMessages(dst[:0], status, openAIErrorBody)        // errors
//	tr := provider.NewChatToMessagesStream(clientModel)                            // streams
//
// Every function appends to dst, so the caller can pass pooled buffers.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// MessagesToChatRequest translates an Anthropic Messages request into an OpenAI chat
// completion request, appending it to dst. The model is kept as the client sent it,
// so the result is routed like any chat request. A stream asks for usage
// (stream_options.include_usage) because Anthropic clients expect token counts at the
// end of a stream. top_k and extended thinking are not carried: OpenAI's chat API
// refuses top_k, and reasoning_effort on any model but a reasoning one — and Claude
// Code asks for thinking by default, so carrying it would turn its requests to other
// models into 400s; the gateway cannot tell which OpenAI-compatible servers accept
// them.
func MessagesToChatRequest(dst, body []byte) ([]byte, error) {
	var in anRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return dst, invalid("the request body is not a valid Messages API request: %v", err)
	}
	if in.Model == "" {
		return dst, invalid("model: field required")
	}
	if in.MaxTokens < 1 {
		return dst, invalid("max_tokens: must be at least 1")
	}
	if len(in.Messages) == 0 {
		return dst, invalid("messages: at least one message is required")
	}
	maxTokens := in.MaxTokens
	out := oaChatRequest{
		Model: in.Model, MaxTokens: &maxTokens, Temperature: in.Temperature, TopP: in.TopP,
		Stream: in.Stream,
	}
	if in.Stream {
		out.StreamOptions = &oaStreamOptions{IncludeUsage: true}
	}
	if len(in.StopSequences) > 0 {
		out.Stop, _ = json.Marshal(in.StopSequences)
	}
	if in.Metadata != nil {
		out.User = in.Metadata.UserID
	}
	system, err := blocksText(in.System)
	if err != nil {
		return dst, invalid("system: %v", err)
	}
	if system != "" {
		content, _ := json.Marshal(system)
		out.Messages = append(out.Messages, oaMessage{Role: "system", Content: content})
	}
	for i, m := range in.Messages {
		switch m.Role {
		case "user":
			out.Messages, err = appendUserMessages(out.Messages, m.Content)
		case "assistant":
			out.Messages, err = appendAssistantMessage(out.Messages, m.Content)
		default:
			return dst, invalid("messages[%d].role: must be user or assistant, got %q", i, m.Role)
		}
		if err != nil {
			return dst, invalid("messages[%d]: %v", i, err)
		}
	}
	for i, t := range in.Tools {
		if t.Type != "" && t.Type != "custom" {
			return dst, invalid("tools[%d]: server tool %q is only available on Anthropic backends", i, t.Type)
		}
		params := t.InputSchema
		if len(params) == 0 || string(params) == "null" {
			params = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, oaTool{Type: "function",
			Function: oaFunctionDef{Name: t.Name, Description: t.Description, Parameters: params}})
	}
	if tc := in.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			out.ToolChoice = json.RawMessage(`"auto"`)
		case "any":
			out.ToolChoice = json.RawMessage(`"required"`)
		case "none":
			out.ToolChoice = json.RawMessage(`"none"`)
		case "tool":
			var named oaNamedToolChoice
			named.Type, named.Function.Name = "function", tc.Name
			out.ToolChoice, _ = json.Marshal(named)
		default:
			return dst, invalid("tool_choice.type: unknown %q", tc.Type)
		}
		if tc.DisableParallelToolUse != nil && *tc.DisableParallelToolUse && len(out.Tools) > 0 {
			f := false
			out.ParallelToolCalls = &f
		}
		if len(out.Tools) == 0 {
			out.ToolChoice = nil
		}
	}
	return appendJSON(dst, out), nil
}

// blocksText flattens Anthropic content that must be text (system, tool results): a
// string or an array of text blocks.
func blocksText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var blocks []anBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", errContent
	}
	var b strings.Builder
	for _, bl := range blocks {
		switch bl.Type {
		case "text":
			if b.Len() > 0 {
				b.WriteString("\n")
			}
			b.WriteString(bl.Text)
		case "image":
			return "", fmt.Errorf("images are not supported here when the backend is not Anthropic")
		default:
			return "", fmt.Errorf("content block type %q is not supported here", bl.Type)
		}
	}
	return b.String(), nil
}

var errContent = fmt.Errorf("content must be a string or an array of content blocks")

func contentBlocks(raw json.RawMessage) ([]anBlock, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []anBlock{{Type: "text", Text: s}}, nil
	}
	var blocks []anBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, errContent
	}
	return blocks, nil
}

// appendUserMessages turns one Anthropic user turn into OpenAI messages: its
// tool_result blocks become tool messages (first, as OpenAI wants them right after the
// assistant's tool calls) and the rest one user message.
func appendUserMessages(msgs []oaMessage, raw json.RawMessage) ([]oaMessage, error) {
	blocks, err := contentBlocks(raw)
	if err != nil {
		return msgs, err
	}
	var parts []oaPart
	for _, b := range blocks {
		switch b.Type {
		case "text":
			parts = append(parts, oaPart{Type: "text", Text: b.Text})
		case "image":
			if b.Source == nil {
				return msgs, fmt.Errorf("image block without source")
			}
			var u string
			switch b.Source.Type {
			case "base64":
				u = "data:" + b.Source.MediaType + ";base64," + b.Source.Data
			case "url":
				u = b.Source.URL
			default:
				return msgs, fmt.Errorf("image source type %q is not supported here", b.Source.Type)
			}
			parts = append(parts, oaPart{Type: "image_url", ImageURL: &oaImageURL{URL: u}})
		case "tool_result":
			text, err := blocksText(b.Content)
			if err != nil {
				return msgs, err
			}
			content, _ := json.Marshal(text)
			msgs = append(msgs, oaMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: content})
		default:
			return msgs, fmt.Errorf("content block type %q is not supported here", b.Type)
		}
	}
	switch {
	case len(parts) == 0:
		return msgs, nil
	case len(parts) == 1 && parts[0].Type == "text":
		content, _ := json.Marshal(parts[0].Text)
		return append(msgs, oaMessage{Role: "user", Content: content}), nil
	}
	content, _ := json.Marshal(parts)
	return append(msgs, oaMessage{Role: "user", Content: content}), nil
}

func appendAssistantMessage(msgs []oaMessage, raw json.RawMessage) ([]oaMessage, error) {
	blocks, err := contentBlocks(raw)
	if err != nil {
		return msgs, err
	}
	m := oaMessage{Role: "assistant"}
	var text strings.Builder
	for _, b := range blocks {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			args := "{}"
			if len(b.Input) > 0 && string(b.Input) != "null" {
				var c bytes.Buffer
				_ = json.Compact(&c, b.Input) // valid: it was decoded
				args = c.String()
			}
			m.ToolCalls = append(m.ToolCalls, oaToolCall{ID: b.ID, Type: "function",
				Function: oaFunctionCall{Name: b.Name, Arguments: args}})
		case "thinking", "redacted_thinking":
			// Another model's reasoning means nothing to this one.
		default:
			return msgs, fmt.Errorf("content block type %q is not supported in assistant turns here", b.Type)
		}
	}
	if text.Len() > 0 || len(m.ToolCalls) == 0 {
		m.Content, _ = json.Marshal(text.String())
	}
	return append(msgs, m), nil
}

// stopReason maps OpenAI's finish_reason to Anthropic's stop_reason.
func stopReason(finish string) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	}
	return "end_turn"
}

// messageID gives an OpenAI completion id the "msg_" prefix Anthropic ids have.
func messageID(id string) string {
	if strings.HasPrefix(id, "msg_") {
		return id
	}
	if id == "" {
		id = "berry"
	}
	return "msg_" + id
}

// ChatToMessagesResponse translates an OpenAI chat.completion into an Anthropic
// Messages response, appending it to dst. model is what the client asked for; the
// upstream's model is used when it is empty.
func ChatToMessagesResponse(dst, body []byte, model string) ([]byte, error) {
	var in oaReply
	if err := json.Unmarshal(body, &in); err != nil {
		return dst, err
	}
	if model == "" {
		model = in.Model
	}
	out := anResponse{ID: messageID(in.ID), Type: "message", Role: "assistant", Model: model, Content: []anBlock{}}
	finish := "stop"
	if len(in.Choices) > 0 {
		c := in.Choices[0]
		text := rawText(c.Message.Content)
		if text == "" {
			text = c.Message.Refusal
		}
		if text != "" {
			out.Content = append(out.Content, anBlock{Type: "text", Text: text})
		}
		for _, tc := range c.Message.ToolCalls {
			out.Content = append(out.Content, anBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: toolInput(tc.Function.Arguments)})
		}
		if c.FinishReason != nil {
			finish = *c.FinishReason
		}
	}
	sr := stopReason(finish)
	out.StopReason = &sr
	out.Usage = messagesUsage(in.Usage)
	return appendJSON(dst, out), nil
}

func messagesUsage(u *struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}) anUsage {
	if u == nil {
		return anUsage{}
	}
	out := anUsage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens}
	if d := u.PromptTokensDetails; d != nil && d.CachedTokens > 0 && d.CachedTokens <= u.PromptTokens {
		out.InputTokens -= d.CachedTokens
		out.CacheReadInputTokens = d.CachedTokens
	}
	return out
}

// rawText reads OpenAI message content: a string, null, or (from some compatible
// services) an array of text parts.
func rawText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []oaPart
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

// toolInput is a tool call's arguments as an Anthropic input object: models
// occasionally produce arguments that are not a JSON object, which become {}.
func toolInput(args string) json.RawMessage {
	args = strings.TrimSpace(args)
	if args == "" || args[0] != '{' || !json.Valid([]byte(args)) {
		return json.RawMessage(`{}`)
	}
	return json.RawMessage(args)
}

// OpenAIErrorToMessages translates an OpenAI-style error body (or any body that came
// with an error status) into the Anthropic error shape, appending it to dst.
func OpenAIErrorToMessages(dst []byte, status int, body []byte) []byte {
	var env struct {
		Error *oaErrorIn `json:"error"`
	}
	msg := ""
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		msg = env.Error.Message
	}
	if msg == "" {
		msg = "upstream answered " + http.StatusText(status) + ": " + snippet(body)
	}
	return AppendMessagesError(dst, status, msg)
}

// AppendMessagesError appends an Anthropic-style error body,
// {"type":"error","error":{"type","message"}}, with the type Anthropic uses for
// status, for the gateway's own errors on /v1/messages.
func AppendMessagesError(dst []byte, status int, message string) []byte {
	return appendJSON(dst, anErrorEnvelope{Type: "error", Error: anErrorBody{Type: MessagesErrorType(status), Message: message}})
}

// AppendMessagesSSE appends e as an Anthropic stream error event.
func (e *Error) AppendMessagesSSE(dst []byte) []byte {
	dst = append(dst, "event: error\ndata: "...)
	return append(e.AppendMessagesJSON(dst), "\n\n"...)
}

// chatToMessagesStream translates OpenAI chunks into the Anthropic event sequence.
type chatToMessagesStream struct {
	id, model string
	started   bool
	finished  bool
	// open is the index of the open content block, -1 when none; openTool tells
	// whether it is a tool_use block.
	open     int
	openTool bool
	next     int // index of the next block
	// toolBlock maps an OpenAI tool call index to its content block index.
	toolBlock map[int]int
	stop      string
	usage     anUsage
}

// NewChatToMessagesStream returns a translator from OpenAI chat.completion.chunk events
// (data payloads, "[DONE]" included) to Anthropic's stream: message_start, then per
// content block content_block_start, content_block_delta… and content_block_stop,
// then message_delta (stop_reason, usage) and message_stop. model is the model the
// client asked for.
func NewChatToMessagesStream(model string) StreamTranslator {
	return &chatToMessagesStream{model: model, open: -1}
}

func (s *chatToMessagesStream) Event(_, data, dst []byte) ([]byte, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || s.finished {
		return dst, nil
	}
	if string(data) == "[DONE]" {
		return s.finish(dst), nil
	}
	var ch oaReply
	if err := json.Unmarshal(data, &ch); err != nil {
		return dst, &Error{Status: http.StatusBadGateway, Type: "upstream_error", Code: "bad_stream",
			Message: "the upstream sent a malformed stream event"}
	}
	if ch.Error != nil {
		st := http.StatusBadGateway
		return dst, &Error{Status: st, Type: OpenAIErrorType(st), Code: "upstream_stream_error", Message: ch.Error.Message}
	}
	if s.id == "" {
		s.id = ch.ID
	}
	if s.model == "" {
		s.model = ch.Model
	}
	dst = s.start(dst)
	for _, c := range ch.Choices {
		if c.Index != 0 {
			continue
		}
		if text := rawText(c.Delta.Content); text != "" {
			if s.open < 0 || s.openTool {
				dst = s.openBlock(dst, false, anStreamBlock{Type: "text", Text: new(string)})
			}
			dst = appendEvent(dst, "content_block_delta", anStreamDelta{Type: "content_block_delta", Index: s.open,
				Delta: anDeltaOut{Type: "text_delta", Text: &text}})
		}
		for _, tc := range c.Delta.ToolCalls {
			k := 0
			if tc.Index != nil {
				k = *tc.Index
			}
			block, known := s.toolBlock[k]
			if !known || tc.ID != "" && block != s.open {
				if s.toolBlock == nil {
					s.toolBlock = make(map[int]int)
				}
				dst = s.openBlock(dst, true, anStreamBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: json.RawMessage(`{}`)})
				block = s.open
				s.toolBlock[k] = block
			}
			if args := tc.Function.Arguments; args != "" {
				dst = appendEvent(dst, "content_block_delta", anStreamDelta{Type: "content_block_delta", Index: block,
					Delta: anDeltaOut{Type: "input_json_delta", PartialJSON: &args}})
			}
		}
		if c.FinishReason != nil && *c.FinishReason != "" {
			s.stop = stopReason(*c.FinishReason)
		}
	}
	if ch.Usage != nil {
		s.usage = messagesUsage(ch.Usage)
	}
	return dst, nil
}

func (s *chatToMessagesStream) start(dst []byte) []byte {
	if s.started {
		return dst
	}
	s.started = true
	return appendEvent(dst, "message_start", struct {
		Type    string     `json:"type"`
		Message anResponse `json:"message"`
	}{"message_start", anResponse{ID: messageID(s.id), Type: "message", Role: "assistant", Model: s.model, Content: []anBlock{}}})
}

func (s *chatToMessagesStream) openBlock(dst []byte, tool bool, b anStreamBlock) []byte {
	dst = s.closeBlock(dst)
	s.open, s.openTool = s.next, tool
	s.next++
	return appendEvent(dst, "content_block_start", struct {
		Type         string        `json:"type"`
		Index        int           `json:"index"`
		ContentBlock anStreamBlock `json:"content_block"`
	}{"content_block_start", s.open, b})
}

func (s *chatToMessagesStream) closeBlock(dst []byte) []byte {
	if s.open < 0 {
		return dst
	}
	dst = appendEvent(dst, "content_block_stop", struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}{"content_block_stop", s.open})
	s.open = -1
	return dst
}

func (s *chatToMessagesStream) finish(dst []byte) []byte {
	dst = s.start(dst)
	dst = s.closeBlock(dst)
	s.finished = true
	stop := s.stop
	if stop == "" {
		stop = "end_turn"
	}
	dst = appendEvent(dst, "message_delta", struct {
		Type  string `json:"type"`
		Delta struct {
			StopReason   string  `json:"stop_reason"`
			StopSequence *string `json:"stop_sequence"`
		} `json:"delta"`
		Usage anUsage `json:"usage"`
	}{Type: "message_delta", Delta: struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	}{StopReason: stop}, Usage: s.usage})
	return appendEvent(dst, "message_stop", struct {
		Type string `json:"type"`
	}{"message_stop"})
}

// End reports a stream whose upstream ended without [DONE]: the message is closed
// only by the upstream's own end.
func (s *chatToMessagesStream) End(dst []byte) ([]byte, error) {
	if !s.finished {
		return dst, ErrTruncated
	}
	return dst, nil
}

type anStreamBlock struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

type anStreamDelta struct {
	Type  string     `json:"type"`
	Index int        `json:"index"`
	Delta anDeltaOut `json:"delta"`
}

type anDeltaOut struct {
	Type        string  `json:"type"`
	Text        *string `json:"text,omitempty"`
	PartialJSON *string `json:"partial_json,omitempty"`
}

func appendEvent(dst []byte, name string, v any) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	dst = append(dst, "\ndata: "...)
	dst = appendJSON(dst, v)
	return append(dst, "\n\n"...)
}
