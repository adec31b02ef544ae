package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

func init() {
	// Both names are accepted in config: "claude" is the original's, "anthropic" the
	// provider's own.
	Register("claude", anthropic{})
	Register("anthropic", anthropic{})
}

// AnthropicVersion is the anthropic-version header sent upstream; a provider's
// configured headers may override it.
const AnthropicVersion = "2023-06-01"

// DefaultMaxTokens is sent to Anthropic when an OpenAI request has no max_tokens,
// because the Messages API requires one.
const DefaultMaxTokens = 4096

// now is the clock for "created" timestamps, replaced in golden tests.
var now = time.Now

// anthropic speaks the Anthropic Messages API: OpenAI chat requests are translated to
// it and its answers back. Only chat (and the models probe) exist there.
type anthropic struct{}

func (anthropic) Prepare(a *Account) error {
	u, err := parseBaseURL(a.BaseURL)
	if err != nil {
		return err
	}
	path := strings.TrimRight(u.Path, "/")
	path = strings.TrimSuffix(path, "/messages")
	path = strings.TrimSuffix(path, "/v1")
	u.Path = path + "/v1/messages"
	a.URLs[OpChat] = u.String()
	u.Path = path + "/v1/models"
	q := u.Query()
	q.Set("limit", "1000") // the listing pages 20 at a time by default
	u.RawQuery = q.Encode()
	a.URLs[OpModels] = u.String()
	if a.APIKey != "" {
		a.Auth = [2]string{"x-api-key", a.APIKey}
	}
	return nil
}

func (anthropic) Supports(op Op) bool { return op == OpChat || op == OpModels }

func (anthropic) WriteRequest(req *fasthttp.Request, a *Account, op Op, model string, body []byte, _ *jsonscan.Fields) error {
	switch op {
	case OpModels:
		req.SetRequestURI(a.URLs[OpModels])
		req.Header.SetMethod(fasthttp.MethodGet)
	case OpChat:
		out, err := ChatToAnthropic(req.SwapBody(nil)[:0], body, model)
		req.SwapBody(out)
		if err != nil {
			return err
		}
		req.SetRequestURI(a.URLs[OpChat])
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
	default:
		return fmt.Errorf("%w: the %s endpoint is not available for Anthropic backends", ErrInvalidRequest, op)
	}
	req.Header.Set("anthropic-version", AnthropicVersion)
	setHeaders(req, a)
	return nil
}

// WriteMessagesRequest forwards an Anthropic Messages request natively (the edge's
// /v1/messages endpoint): only the model is rewritten and the provider's own key sent.
func (anthropic) WriteMessagesRequest(req *fasthttp.Request, a *Account, model string, body []byte, f *jsonscan.Fields) error {
	req.SetRequestURI(a.URLs[OpChat])
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SwapBody(jsonscan.Rewrite(req.SwapBody(nil)[:0], body, f, model, true))
	req.Header.Set("anthropic-version", AnthropicVersion)
	setHeaders(req, a)
	return nil
}

func (anthropic) TranslateResponse(op Op, status int, body, dst []byte) ([]byte, bool, error) {
	if op == OpModels && status < 300 {
		return dst, false, nil // read by ParseModelIDs, never sent to clients
	}
	if status >= 300 {
		return AnthropicErrorToOpenAI(dst, status, body), true, nil
	}
	out, err := AnthropicToChat(dst, body)
	return out, true, err
}

func (anthropic) NewStream(op Op, model string) StreamTranslator {
	if op != OpChat {
		return nil
	}
	return NewAnthropicToChatStream(model)
}

// ClientStatus maps Anthropic's 529 (overloaded) to 503, which clients know.
func (anthropic) ClientStatus(_ Op, status int) int {
	if status == StatusOverloaded {
		return fasthttp.StatusServiceUnavailable
	}
	return status
}

// ChatToAnthropic translates an OpenAI chat completion request into an Anthropic
// Messages request for upstream model `model`, appending it to dst. A request that
// cannot be expressed there gets an error wrapping ErrInvalidRequest.
func ChatToAnthropic(dst, body []byte, model string) ([]byte, error) {
	var in chatRequestExt
	if err := json.Unmarshal(body, &in); err != nil {
		return dst, invalid("the request body is not a valid chat completion request: %v", err)
	}
	if in.N != nil && *in.N > 1 {
		return dst, invalid("n > 1 is not supported by Anthropic backends")
	}
	out := anRequestExt{anRequest: anRequest{Model: model, Stream: in.Stream, TopP: in.TopP, TopK: in.TopK, MaxTokens: DefaultMaxTokens}}
	switch {
	case in.MaxCompletionTokens != nil:
		out.MaxTokens = *in.MaxCompletionTokens
	case in.MaxTokens != nil:
		out.MaxTokens = *in.MaxTokens
	}
	if out.MaxTokens < 1 {
		return dst, invalid("max_tokens must be at least 1")
	}
	if t := in.Temperature; t != nil {
		// OpenAI's range is 0..2, Anthropic's 0..1.
		v := min(max(*t, 0), 1)
		out.Temperature = &v
	}
	stops, err := stringOrList(in.Stop)
	if err != nil {
		return dst, invalid("stop: %v", err)
	}
	out.StopSequences = stops
	if in.User != "" {
		out.Metadata = &anMetadata{UserID: in.User}
	}

	var (
		system []string
		turns  []turn
	)
	for i, m := range in.Messages {
		switch m.Role {
		case "system", "developer":
			text, err := textOf(m.Content)
			if err != nil {
				return dst, invalid("messages[%d]: %v", i, err)
			}
			system = append(system, text)
		case "user":
			blocks, err := userBlocks(m.Content)
			if err != nil {
				return dst, invalid("messages[%d]: %v", i, err)
			}
			turns = appendTurn(turns, "user", blocks)
		case "assistant":
			blocks, err := assistantBlocks(m)
			if err != nil {
				return dst, invalid("messages[%d]: %v", i, err)
			}
			turns = appendTurn(turns, "assistant", blocks)
		case "tool", "function":
			text, err := textOf(m.Content)
			if err != nil {
				return dst, invalid("messages[%d]: %v", i, err)
			}
			id := m.ToolCallID
			if id == "" {
				id = m.Name
			}
			content, _ := json.Marshal(text)
			turns = appendTurn(turns, "user", []anBlock{{Type: "tool_result", ToolUseID: id, Content: content}})
		default:
			return dst, invalid("messages[%d]: unknown role %q", i, m.Role)
		}
	}
	if len(system) > 0 {
		out.System, _ = json.Marshal(strings.Join(system, "\n\n"))
	}
	if len(turns) == 0 {
		return dst, invalid("messages must contain at least one user or assistant message")
	}
	out.Messages = make([]anMessage, len(turns))
	for i, t := range turns {
		out.Messages[i] = anMessage{Role: t.role, Blocks: t.blocks}
	}

	for i, t := range in.Tools {
		if t.Type != "function" && t.Type != "" {
			return dst, invalid("tools[%d]: type %q is not supported by Anthropic backends", i, t.Type)
		}
		schema := t.Function.Parameters
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, anTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	if out.ToolChoice, err = anthropicToolChoice(in.ToolChoice, in.ParallelToolCalls); err != nil {
		return dst, err
	}
	if out.ToolChoice != nil && out.ToolChoice.Type == "none" && len(out.Tools) == 0 {
		out.ToolChoice = nil
	}
	if err := out.think(in.ReasoningEffort, turns); err != nil {
		return dst, err
	}
	return appendJSON(dst, out), nil
}

// chatRequestExt is a chat request with the members beyond oaChatRequest that the
// Anthropic translations carry: top_k, which OpenAI does not have but vLLM and other
// OpenAI-compatible servers accept, and reasoning_effort.
type chatRequestExt struct {
	oaChatRequest
	TopK            *int   `json:"top_k,omitempty"`
	ReasoningEffort string `json:"reasoning_effort,omitempty"`
}

// anRequestExt is an Anthropic Messages request with extended thinking.
type anRequestExt struct {
	anRequest
	Thinking *anThinking `json:"thinking,omitempty"`
}

type anThinking struct {
	Type         string `json:"type"` // enabled, disabled (adaptive on newer models)
	BudgetTokens int    `json:"budget_tokens,omitempty"`
}

// thinkingBudgets are the budget_tokens sent for OpenAI's reasoning_effort values;
// "none" (and no effort) sends no thinking.
var thinkingBudgets = map[string]int{"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}

// think turns a chat reasoning_effort into extended thinking. Anthropic's budget
// counts against max_tokens, which must exceed it, so a max_tokens at or below the
// budget is raised by the budget: the answer keeps the room the client gave it.
// Thinking allows neither a temperature other than 1, top_k nor a top_p below 0.95,
// which are dropped, as OpenAI's reasoning models ignore sampling settings. It is not
// enabled when tool_choice forces a tool (Anthropic refuses that combination), nor on
// a request that continues a tool loop (its last turn carries tool results): Anthropic
// then wants the signed thinking blocks of the assistant turn back, which chat cannot
// carry, so that turn goes on without thinking.
func (out *anRequestExt) think(effort string, turns []turn) error {
	if effort == "" || effort == "none" {
		return nil
	}
	budget, ok := thinkingBudgets[effort]
	if !ok {
		return invalid("reasoning_effort %q is not one of none, minimal, low, medium, high", effort)
	}
	if tc := out.ToolChoice; tc != nil && (tc.Type == "any" || tc.Type == "tool") {
		return nil
	}
	if last := turns[len(turns)-1]; last.role == "user" {
		for _, b := range last.blocks {
			if b.Type == "tool_result" {
				return nil
			}
		}
	}
	out.Thinking = &anThinking{Type: "enabled", BudgetTokens: budget}
	if out.MaxTokens <= budget {
		out.MaxTokens += budget
	}
	if t := out.Temperature; t != nil && *t != 1 {
		out.Temperature = nil
	}
	if p := out.TopP; p != nil && *p < 0.95 {
		out.TopP = nil
	}
	out.TopK = nil
	return nil
}

func anthropicToolChoice(raw json.RawMessage, parallel *bool) (*anToolChoice, error) {
	var tc *anToolChoice
	if len(raw) > 0 && string(raw) != "null" {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			switch s {
			case "auto":
				tc = &anToolChoice{Type: "auto"}
			case "none":
				tc = &anToolChoice{Type: "none"}
			case "required":
				tc = &anToolChoice{Type: "any"}
			default:
				return nil, invalid("tool_choice %q is not one of auto, none, required", s)
			}
		} else {
			var named oaNamedToolChoice
			if err := json.Unmarshal(raw, &named); err != nil || named.Function.Name == "" {
				return nil, invalid("tool_choice must be a string or {\"type\":\"function\",\"function\":{\"name\":…}}")
			}
			tc = &anToolChoice{Type: "tool", Name: named.Function.Name}
		}
	}
	if parallel != nil && !*parallel {
		if tc == nil {
			tc = &anToolChoice{Type: "auto"}
		}
		if tc.Type != "none" {
			t := true
			tc.DisableParallelToolUse = &t
		}
	}
	return tc, nil
}

// turn is an Anthropic message being assembled.
type turn struct {
	role   string
	blocks []anBlock
}

// appendTurn adds blocks as a turn of role, merging with the previous turn when it has
// the same role: Anthropic wants user and assistant to alternate, and OpenAI sends each
// tool result as its own message.
func appendTurn(turns []turn, role string, blocks []anBlock) []turn {
	if len(blocks) == 0 {
		return turns
	}
	if n := len(turns); n > 0 && turns[n-1].role == role {
		turns[n-1].blocks = append(turns[n-1].blocks, blocks...)
		return turns
	}
	return append(turns, turn{role, blocks})
}

// textOf flattens OpenAI content (a string, or an array of text parts) to text.
func textOf(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []oaPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("content must be a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part type %q is not allowed here", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

func userBlocks(raw json.RawMessage) ([]anBlock, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []anBlock{{Type: "text", Text: s}}, nil
	}
	var parts []oaPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, fmt.Errorf("content must be a string or an array of content parts")
	}
	blocks := make([]anBlock, 0, len(parts))
	for _, p := range parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				blocks = append(blocks, anBlock{Type: "text", Text: p.Text})
			}
		case "image_url":
			if p.ImageURL == nil {
				return nil, fmt.Errorf("image_url part without image_url")
			}
			src, err := imageSource(p.ImageURL.URL)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, anBlock{Type: "image", Source: src})
		default:
			return nil, fmt.Errorf("content part type %q is not supported by Anthropic backends", p.Type)
		}
	}
	return blocks, nil
}

// imageSource turns an OpenAI image URL (a data: URL or a plain http(s) URL) into an
// Anthropic image source.
func imageSource(u string) (*anImageSource, error) {
	if rest, ok := strings.CutPrefix(u, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		mediaType, isB64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isB64 || mediaType == "" {
			return nil, fmt.Errorf("image data URLs must be data:<media type>;base64,<data>")
		}
		return &anImageSource{Type: "base64", MediaType: mediaType, Data: data}, nil
	}
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return &anImageSource{Type: "url", URL: u}, nil
	}
	return nil, fmt.Errorf("image url must be an http(s) URL or a base64 data URL")
}

func assistantBlocks(m oaMessage) ([]anBlock, error) {
	text, err := textOf(m.Content)
	if err != nil {
		return nil, err
	}
	var blocks []anBlock
	if text != "" {
		blocks = append(blocks, anBlock{Type: "text", Text: text})
	}
	for i, tc := range m.ToolCalls {
		input := json.RawMessage(`{}`)
		if args := strings.TrimSpace(tc.Function.Arguments); args != "" {
			if !json.Valid([]byte(args)) || args[0] != '{' {
				return nil, fmt.Errorf("tool_calls[%d].function.arguments is not a JSON object", i)
			}
			input = json.RawMessage(args)
		}
		blocks = append(blocks, anBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
	}
	return blocks, nil
}

// stringOrList reads OpenAI's stop: a string or an array of strings.
func stringOrList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("must be a string or an array of strings")
	}
	return list, nil
}

// finishReason maps Anthropic's stop_reason to OpenAI's finish_reason.
func finishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop" // end_turn, stop_sequence, pause_turn
}

// AnthropicToChat translates an Anthropic Messages response into an OpenAI
// chat.completion, appending it to dst.
func AnthropicToChat(dst, body []byte) ([]byte, error) {
	var in anResponse
	if err := json.Unmarshal(body, &in); err != nil {
		return dst, fmt.Errorf("anthropic response is not a message: %w", err)
	}
	msg := oaReplyMessage{Role: "assistant"}
	var text strings.Builder
	hasText := false
	for _, b := range in.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
			hasText = true
		case "tool_use":
			args := "{}"
			if len(b.Input) > 0 && string(b.Input) != "null" {
				var c bytes.Buffer
				_ = json.Compact(&c, b.Input) // valid: it was decoded
				args = c.String()
			}
			msg.ToolCalls = append(msg.ToolCalls, oaToolCall{ID: b.ID, Type: "function",
				Function: oaFunctionCall{Name: b.Name, Arguments: args}})
		}
	}
	if hasText || len(msg.ToolCalls) == 0 {
		s := text.String()
		msg.Content = &s
	}
	stop := ""
	if in.StopReason != nil {
		stop = *in.StopReason
	}
	fr := finishReason(stop)
	return appendJSON(dst, oaChatCompletion{
		ID: in.ID, Object: "chat.completion", Created: now().Unix(), Model: in.Model,
		Choices: []oaChoice{{Message: &msg, FinishReason: &fr}},
		Usage:   openAIUsage(&in.Usage),
	}), nil
}

func openAIUsage(u *anUsage) *oaUsage {
	prompt := u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
	out := &oaUsage{PromptTokens: prompt, CompletionTokens: u.OutputTokens, TotalTokens: prompt + u.OutputTokens}
	if u.CacheReadInputTokens > 0 {
		out.PromptTokensDetails = &oaPromptTokenDetail{CachedTokens: u.CacheReadInputTokens}
	}
	return out
}

// AnthropicErrorToOpenAI translates an Anthropic error body (or any body that came
// with an error status) into OpenAI's error shape, appending it to dst. The Anthropic
// error type becomes the code; the type is OpenAI's for the status.
func AnthropicErrorToOpenAI(dst []byte, status int, body []byte) []byte {
	return anthropicError(status, body).AppendJSON(dst)
}

func anthropicError(status int, body []byte) *Error {
	var env anErrorEnvelope
	if json.Unmarshal(body, &env) != nil || env.Error.Message == "" && env.Error.Type == "" {
		env.Error.Message = "upstream answered " + strconv.Itoa(status) + ": " + snippet(body)
	}
	if status == StatusOverloaded || env.Error.Type == "overloaded_error" && status < 500 {
		status = fasthttp.StatusServiceUnavailable
	}
	return &Error{Status: status, Type: OpenAIErrorType(status), Code: env.Error.Type, Message: env.Error.Message}
}

// snippet is a short, printable excerpt of an unexpected body for error messages.
func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.ToValidUTF8(string(b), "?")
}

// anthropicToChatStream translates Anthropic's stream events into OpenAI chunks.
type anthropicToChatStream struct {
	id, model string
	created   int64
	usage     anUsage
	// tools maps a content block index to its tool call's index among tool calls.
	tools   map[int]int
	nTools  int
	finish  string
	started bool
	stopped bool // message_stop came: the upstream ended its stream
	// ev and its delta are reused between events: decoding into them allocates only
	// the strings.
	ev    anEvent
	delta anDelta
	// prefix is every chunk's start up to the delta, built once the id and model are
	// known.
	prefix []byte
}

// NewAnthropicToChatStream returns a translator from Anthropic Messages stream events
// to OpenAI chat.completion.chunk events. model names the model until the upstream's
// message_start does.
func NewAnthropicToChatStream(model string) StreamTranslator {
	return &anthropicToChatStream{model: model, created: now().Unix()}
}

func (s *anthropicToChatStream) Event(name, data, dst []byte) ([]byte, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return dst, nil
	}
	s.ev, s.delta = anEvent{Delta: &s.delta}, anDelta{}
	ev := &s.ev
	if err := json.Unmarshal(data, ev); err != nil {
		return dst, &Error{Status: fasthttp.StatusBadGateway, Type: "upstream_error", Code: "bad_stream",
			Message: "the upstream sent a malformed stream event"}
	}
	if ev.Type == "" {
		ev.Type = string(name)
	}
	switch ev.Type {
	case "message_start":
		if m := ev.Message; m != nil {
			if m.ID != "" {
				s.id = m.ID
			}
			if m.Model != "" {
				s.model = m.Model
			}
			s.usage = m.Usage
			s.prefix = nil
		}
		return s.start(dst), nil
	case "content_block_start":
		dst = s.start(dst)
		b := ev.ContentBlock
		if b == nil {
			return dst, nil
		}
		switch b.Type {
		case "text":
			if b.Text != "" {
				return s.chunk(dst, oaDelta{Content: &b.Text}, nil, nil), nil
			}
		case "tool_use":
			if s.tools == nil {
				s.tools = make(map[int]int)
			}
			k := s.nTools
			s.tools[ev.Index] = k
			s.nTools++
			call := oaToolCall{Index: &k, ID: b.ID, Type: "function", Function: oaFunctionCall{Name: b.Name}}
			return s.chunk(dst, oaDelta{ToolCalls: []oaToolCall{call}}, nil, nil), nil
		}
	case "content_block_delta":
		dst = s.start(dst)
		d := ev.Delta
		if d == nil {
			return dst, nil
		}
		switch d.Type {
		case "text_delta":
			// The hot path of a stream, written without reflection.
			dst = append(s.chunkPrefix(dst), `{"content":`...)
			dst = jsonscan.AppendString(dst, d.Text)
			return append(dst, `},"logprobs":null,"finish_reason":null}]}`+"\n\n"...), nil
		case "input_json_delta":
			k, ok := s.tools[ev.Index]
			if !ok || d.PartialJSON == "" {
				return dst, nil
			}
			call := oaToolCall{Index: &k, Function: oaFunctionCall{Arguments: d.PartialJSON}}
			return s.chunk(dst, oaDelta{ToolCalls: []oaToolCall{call}}, nil, nil), nil
		}
	case "message_delta":
		dst = s.start(dst)
		if ev.Delta != nil && ev.Delta.StopReason != nil {
			s.finish = finishReason(*ev.Delta.StopReason)
		}
		if u := ev.Usage; u != nil {
			// message_delta's counts are cumulative; input counts appear only in newer
			// API versions.
			s.usage.OutputTokens = u.OutputTokens
			if u.InputTokens > 0 {
				s.usage.InputTokens = u.InputTokens
			}
			if u.CacheReadInputTokens > 0 {
				s.usage.CacheReadInputTokens = u.CacheReadInputTokens
			}
			if u.CacheCreationInputTokens > 0 {
				s.usage.CacheCreationInputTokens = u.CacheCreationInputTokens
			}
		}
		if s.finish == "" {
			return dst, nil
		}
		fr := s.finish
		return s.chunk(dst, oaDelta{}, &fr, openAIUsage(&s.usage)), nil
	case "error":
		st := fasthttp.StatusBadGateway
		body := anErrorEnvelope{Type: "error"}
		if ev.Error != nil {
			body.Error = *ev.Error
		}
		switch body.Error.Type {
		case "overloaded_error":
			st = fasthttp.StatusServiceUnavailable
		case "rate_limit_error":
			st = fasthttp.StatusTooManyRequests
		case "api_error":
			st = fasthttp.StatusInternalServerError
		case "invalid_request_error":
			st = fasthttp.StatusBadRequest
		case "authentication_error":
			st = fasthttp.StatusUnauthorized
		case "permission_error":
			st = fasthttp.StatusForbidden
		}
		raw, _ := json.Marshal(body)
		return dst, anthropicError(st, raw)
	case "message_stop":
		s.stopped = true
	}
	// ping, content_block_stop and event types added later need nothing more.
	return dst, nil
}

// start emits the role chunk OpenAI streams open with, once.
func (s *anthropicToChatStream) start(dst []byte) []byte {
	if s.started {
		return dst
	}
	s.started = true
	empty := ""
	return s.chunk(dst, oaDelta{Role: "assistant", Content: &empty}, nil, nil)
}

func (s *anthropicToChatStream) chunk(dst []byte, d oaDelta, finish *string, u *oaUsage) []byte {
	dst = append(dst, "data: "...)
	dst = appendJSON(dst, oaChatCompletion{
		ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model,
		Choices: []oaChoice{{Delta: &d, FinishReason: finish}}, Usage: u,
	})
	return append(dst, "\n\n"...)
}

// chunkPrefix appends `data: {"id":…,"choices":[{"index":0,"delta":` as chunk does.
func (s *anthropicToChatStream) chunkPrefix(dst []byte) []byte {
	if s.prefix == nil {
		s.prefix = append(s.prefix, `data: {"id":`...)
		s.prefix = jsonscan.AppendString(s.prefix, s.id)
		s.prefix = append(s.prefix, `,"object":"chat.completion.chunk","created":`...)
		s.prefix = strconv.AppendInt(s.prefix, s.created, 10)
		s.prefix = append(s.prefix, `,"model":`...)
		s.prefix = jsonscan.AppendString(s.prefix, s.model)
		s.prefix = append(s.prefix, `,"choices":[{"index":0,"delta":`...)
	}
	return append(dst, s.prefix...)
}

func (s *anthropicToChatStream) End(dst []byte) ([]byte, error) {
	if !s.stopped {
		return dst, ErrTruncated
	}
	return append(dst, "data: [DONE]\n\n"...), nil
}
