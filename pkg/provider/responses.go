package provider

// Inbound Responses API: the edge's POST /v1/responses serves OpenAI's Responses API
// in front of backends that only speak Chat Completions (Anthropic, whose adapter
// translates chat, and OpenAI-compatible servers without /v1/responses). The
// translation is stateless: nothing is stored, so a request must carry the whole
// conversation in its input.
//
// How the proxy uses it, for a backend that does not serve the Responses API itself:
//
//	chat, err := provider.ResponsesToChatRequest(buf[:0], clientBody)
//	// err wraps ErrInvalidRequest: answer 400 in OpenAI's error shape.
//	// Otherwise route chat like a /v1/chat/completions body (jsonscan.Scan, model
//	// lookup, failover) and send it with the backend adapter's WriteRequest(OpChat).
//	// Run the adapter's own TranslateResponse or NewStream first if it has one, so
//	// the input here is always OpenAI's chat format:
//	out, err := provider.ChatToResponsesResponse(dst[:0], chatBody, clientBody, id) // 2xx
//	tr := provider.NewChatToResponsesStream(id, clientBody)                         // streams
//	// Error bodies need no translation: the Responses API uses OpenAI's error shape.
//	// A stream whose translator fails (Event's *Error, End's ErrTruncated) ends with
//	// the Responses API's "error" event.
//
// id is the response id the client sees ("resp_…"), made by the caller. Every function
// appends to dst, so the caller can pass pooled buffers.
//
// For failover, classify a translated stream by the chat chunks going in, as for
// /v1/messages: the translator ends every complete stream with response.completed,
// which would make an upstream that sent [DONE] before any content look like an
// answer. ResponsesEventKind classifies the events of upstreams that speak the
// Responses API themselves.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

// ResponsesToChatRequest translates a Responses API create request into an OpenAI chat
// completion request, appending it to dst. The model is kept as the client sent it, so
// the result is routed like any chat request. A request that cannot be expressed in
// Chat Completions gets an error wrapping ErrInvalidRequest.
//
// Translated: model; input (a string, or message, function_call and
// function_call_output items); instructions (a leading system message); function
// tools; tool_choice; max_output_tokens (max_tokens); temperature; top_p; user (or
// else safety_identifier); parallel_tool_calls; text.format (response_format);
// reasoning.effort (reasoning_effort); stream (with stream_options.include_usage, so
// the final response carries usage). Developer messages become system messages, which
// every chat server accepts.
//
// Refused: previous_response_id, conversation, prompt and item_reference items (they
// name state stored at OpenAI), background, hosted tools (web_search, file_search,
// mcp, …) and their tool_choice forms, input_file and input_audio parts, images given
// by file_id, and item types chat has no place for (computer_call, …).
//
// Accepted and not sent on: reasoning items (another model's reasoning means nothing
// to this one), store (the response says store: false), metadata (echoed in the
// response), include, truncation, service_tier, prompt_cache_key, max_tool_calls,
// top_logprobs, stream_options, text.verbosity and reasoning.summary.
func ResponsesToChatRequest(dst, body []byte) ([]byte, error) {
	var in rsRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return dst, invalid("the request body is not a valid Responses API request: %v", err)
	}
	if in.Model == "" {
		return dst, invalid("model: field required")
	}
	if in.PreviousResponseID != nil && *in.PreviousResponseID != "" {
		return dst, invalid("previous_response_id: this backend serves the Responses API through stateless translation " +
			"to Chat Completions and stores no responses; send the whole conversation as input")
	}
	if isSet(in.Conversation) {
		return dst, invalid("conversation: this backend serves the Responses API through stateless translation " +
			"to Chat Completions and stores no conversations; send the whole conversation as input")
	}
	if isSet(in.Prompt) {
		return dst, invalid("prompt: stored prompt templates are not available: this backend serves the Responses API " +
			"through translation to Chat Completions")
	}
	if in.Background != nil && *in.Background {
		return dst, invalid("background: background responses are not available: this backend serves the Responses API " +
			"through translation to Chat Completions")
	}
	out := rsChatRequest{
		Model: in.Model, MaxTokens: in.MaxOutputTokens, Temperature: in.Temperature, TopP: in.TopP,
		Stream: in.Stream, User: in.User,
	}
	if out.User == "" {
		out.User = in.SafetyIdentifier
	}
	if in.Stream {
		out.StreamOptions = &oaStreamOptions{IncludeUsage: true}
	}
	if in.Instructions != nil && *in.Instructions != "" {
		out.Messages = append(out.Messages, oaMessage{Role: "system", Content: rawString(*in.Instructions)})
	}
	var err error
	if out.Messages, err = appendInputMessages(out.Messages, in.Input); err != nil {
		return dst, err
	}
	if len(out.Messages) == 0 {
		return dst, invalid("input: no message to send (reasoning items are dropped in translation to Chat Completions)")
	}
	for i, t := range in.Tools {
		if t.Type != "function" {
			return dst, invalid("tools[%d]: tool type %q is not available: this backend serves the Responses API "+
				"through translation to Chat Completions, which has function tools only", i, t.Type)
		}
		if t.Name == "" {
			return dst, invalid("tools[%d].name: field required", i)
		}
		params := t.Parameters
		if !isSet(params) {
			params = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, rsChatTool{Type: "function", Function: rsChatFunction{
			Name: t.Name, Description: t.Description, Parameters: params, Strict: t.Strict}})
	}
	if out.ToolChoice, err = chatToolChoice(in.ToolChoice); err != nil {
		return dst, err
	}
	if len(out.Tools) > 0 {
		out.ParallelToolCalls = in.ParallelToolCalls
	} else {
		// Chat servers refuse tool_choice and parallel_tool_calls without tools.
		out.ToolChoice = nil
	}
	if in.Text != nil && in.Text.Format != nil {
		switch f := in.Text.Format; f.Type {
		case "", "text":
		case "json_object":
			out.ResponseFormat = &rsChatResponseFormat{Type: "json_object"}
		case "json_schema":
			if f.Name == "" {
				return dst, invalid("text.format.name: field required")
			}
			if !isSet(f.Schema) {
				return dst, invalid("text.format.schema: field required")
			}
			out.ResponseFormat = &rsChatResponseFormat{Type: "json_schema", JSONSchema: &rsChatJSONSchema{
				Name: f.Name, Description: f.Description, Schema: f.Schema, Strict: f.Strict}}
		default:
			return dst, invalid("text.format.type: unknown %q", f.Type)
		}
	}
	if in.Reasoning != nil && in.Reasoning.Effort != nil {
		out.ReasoningEffort = *in.Reasoning.Effort
	}
	return appendJSON(dst, out), nil
}

// rawString is s as a JSON string, HTML characters unescaped like appendJSON's.
func rawString(s string) json.RawMessage {
	return jsonscan.AppendString(nil, s)
}

// isSet reports whether a raw member was sent with a value other than null.
func isSet(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// appendInputMessages translates the request's input: a string (one user message) or
// an array of items.
func appendInputMessages(msgs []oaMessage, raw json.RawMessage) ([]oaMessage, error) {
	if !isSet(raw) {
		return msgs, invalid("input: field required (this backend keeps no conversation state: send the whole conversation)")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return append(msgs, oaMessage{Role: "user", Content: rawString(s)}), nil
	}
	var items []rsItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return msgs, invalid("input: must be a string or an array of input items")
	}
	if len(items) == 0 {
		return msgs, invalid("input: at least one item is required")
	}
	for i, it := range items {
		var err error
		typ := it.Type
		if typ == "" && it.Role != "" {
			typ = "message"
		}
		switch typ {
		case "message":
			msgs, err = appendMessageItem(msgs, it)
		case "function_call":
			if it.CallID == "" {
				return msgs, invalid("input[%d].call_id: field required", i)
			}
			if it.Name == "" {
				return msgs, invalid("input[%d].name: field required", i)
			}
			call := oaToolCall{ID: it.CallID, Type: "function", Function: oaFunctionCall{Name: it.Name, Arguments: it.Arguments}}
			// A function call belongs to the assistant turn before it: the text the model
			// wrote with it, or the calls made alongside it.
			if n := len(msgs); n > 0 && msgs[n-1].Role == "assistant" {
				msgs[n-1].ToolCalls = append(msgs[n-1].ToolCalls, call)
			} else {
				msgs = append(msgs, oaMessage{Role: "assistant", ToolCalls: []oaToolCall{call}})
			}
		case "function_call_output":
			if it.CallID == "" {
				return msgs, invalid("input[%d].call_id: field required", i)
			}
			var text string
			if text, err = outputText(it.Output); err == nil {
				msgs = append(msgs, oaMessage{Role: "tool", ToolCallID: it.CallID, Content: rawString(text)})
			}
		case "reasoning":
			// Another model's reasoning means nothing to this one (and encrypted
			// reasoning only to OpenAI).
		case "item_reference":
			return msgs, invalid("input[%d]: item_reference names an item stored at OpenAI; this backend serves the "+
				"Responses API through stateless translation to Chat Completions: send the item itself", i)
		case "":
			return msgs, invalid("input[%d]: an item needs a type or a role", i)
		default:
			return msgs, invalid("input[%d]: item type %q is not available: this backend serves the Responses API "+
				"through translation to Chat Completions", i, typ)
		}
		if err != nil {
			return msgs, invalid("input[%d]: %v", i, err)
		}
	}
	return msgs, nil
}

// appendMessageItem translates a message item (the short form {role, content} or
// {type: "message", …}, including an earlier response's output message).
func appendMessageItem(msgs []oaMessage, it rsItem) ([]oaMessage, error) {
	switch it.Role {
	case "user":
		parts, err := inputParts(it.Content)
		if err != nil {
			return msgs, err
		}
		var content json.RawMessage
		if len(parts) == 1 && parts[0].Type == "text" {
			content = rawString(parts[0].Text)
		} else if len(parts) == 0 {
			content = json.RawMessage(`""`)
		} else {
			content = appendJSON(nil, parts)
		}
		return append(msgs, oaMessage{Role: "user", Content: content}), nil
	case "system", "developer", "assistant":
		text, err := itemText(it.Content, it.Role == "assistant")
		if err != nil {
			return msgs, err
		}
		role := it.Role
		if role == "developer" {
			role = "system" // OpenAI takes either; other chat servers know system only
		}
		return append(msgs, oaMessage{Role: role, Content: rawString(text)}), nil
	case "":
		return msgs, fmt.Errorf("role: field required")
	}
	return msgs, fmt.Errorf("role: must be user, assistant, system or developer, got %q", it.Role)
}

var errItemContent = errors.New("content must be a string or an array of content parts")

// contentParts reads message content: a string (one text part) or an array of parts.
func contentParts(raw json.RawMessage) ([]rsPart, error) {
	if !isSet(raw) {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []rsPart{{Type: "input_text", Text: s}}, nil
	}
	var parts []rsPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, errItemContent
	}
	return parts, nil
}

// inputParts translates a user message's content to chat content parts.
func inputParts(raw json.RawMessage) ([]oaPart, error) {
	parts, err := contentParts(raw)
	if err != nil {
		return nil, err
	}
	out := make([]oaPart, 0, len(parts))
	for i, p := range parts {
		switch p.Type {
		case "input_text", "output_text", "text":
			out = append(out, oaPart{Type: "text", Text: p.Text})
		case "input_image":
			u, err := p.imageURL()
			if err != nil {
				return nil, fmt.Errorf("content[%d]: %v", i, err)
			}
			detail := p.Detail
			if detail == "auto" {
				detail = ""
			}
			out = append(out, oaPart{Type: "image_url", ImageURL: &oaImageURL{URL: u, Detail: detail}})
		default:
			return nil, partError(i, p.Type)
		}
	}
	return out, nil
}

// imageURL reads an input_image's image_url: a string (OpenAI's form), or {url} as
// chat writes it.
func (p *rsPart) imageURL() (string, error) {
	if p.FileID != "" {
		return "", fmt.Errorf("images given by file_id are stored at OpenAI and not available here: send image_url (an http(s) or data: URL)")
	}
	var u string
	if json.Unmarshal(p.ImageURL, &u) != nil {
		var obj struct {
			URL string `json:"url"`
		}
		if json.Unmarshal(p.ImageURL, &obj) == nil {
			u = obj.URL
		}
	}
	if u == "" {
		return "", fmt.Errorf("input_image: image_url required")
	}
	return u, nil
}

func partError(i int, typ string) error {
	switch typ {
	case "input_file", "input_audio":
		return fmt.Errorf("content[%d]: %s parts are not available: this backend serves the Responses API "+
			"through translation to Chat Completions", i, typ)
	}
	return fmt.Errorf("content[%d]: content part type %q is not supported here", i, typ)
}

// itemText flattens the content of a system, developer or assistant message to text.
// An assistant's earlier refusal is kept as its text.
func itemText(raw json.RawMessage, assistant bool) (string, error) {
	parts, err := contentParts(raw)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i, p := range parts {
		text := p.Text
		switch {
		case p.Type == "input_text" || p.Type == "output_text" || p.Type == "text":
		case p.Type == "refusal" && assistant:
			text = p.Refusal
		default:
			return "", partError(i, p.Type)
		}
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(text)
	}
	return b.String(), nil
}

// outputText reads a function_call_output's output: a string or an array of text
// parts.
func outputText(raw json.RawMessage) (string, error) {
	if !isSet(raw) {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []rsPart
	if json.Unmarshal(raw, &parts) != nil {
		return "", fmt.Errorf("output must be a string or an array of content parts")
	}
	var b strings.Builder
	for i, p := range parts {
		if p.Type != "input_text" && p.Type != "output_text" && p.Type != "text" {
			return "", partError(i, p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// chatToolChoice translates the Responses tool_choice to chat's.
func chatToolChoice(raw json.RawMessage) (json.RawMessage, error) {
	if !isSet(raw) {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "auto", "none", "required":
			return raw, nil
		}
		return nil, invalid("tool_choice %q is not one of auto, none, required", s)
	}
	var obj struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, invalid("tool_choice must be a string or an object")
	}
	if obj.Type != "function" {
		return nil, invalid("tool_choice type %q is not available: this backend serves the Responses API through "+
			"translation to Chat Completions, which has function tools only", obj.Type)
	}
	if obj.Name == "" {
		return nil, invalid("tool_choice.name: field required")
	}
	var named oaNamedToolChoice
	named.Type, named.Function.Name = "function", obj.Name
	return appendJSON(nil, named), nil
}

// ChatToResponsesResponse translates a buffered chat.completion into a Responses API
// response object, appending it to dst. id is the response id the client sees; req is
// the client's Responses request, whose settings the response echoes (instructions,
// tools, tool_choice, text, temperature, …). The response says store: false: a
// translated response is never stored. A body that is an error (an "error" member)
// or not a chat completion is refused with an error; translate error bodies with
// their status instead (the Responses API uses OpenAI's error shape).
func ChatToResponsesResponse(dst, chat, req []byte, id string) ([]byte, error) {
	var in rsChatReply
	if err := json.Unmarshal(chat, &in); err != nil {
		return dst, fmt.Errorf("the upstream answer is not a chat completion: %w", err)
	}
	if in.Error != nil {
		return dst, &Error{Status: http.StatusBadGateway, Type: OpenAIErrorType(http.StatusBadGateway),
			Code: "upstream_error", Message: in.Error.Message}
	}
	echo := readEcho(req)
	r := newResponse(id, &echo, in.Created, in.Model)
	c := in.choice()
	finish := ""
	if c != nil && c.FinishReason != nil {
		finish = *c.FinishReason
	}
	r.finish(finish)
	status := r.itemStatus()
	if c != nil {
		ids := itemIDs(id)
		var parts []any
		if text := rawText(c.Message.Content); text != "" {
			parts = append(parts, rsOutputText{Type: "output_text", Text: text, Annotations: []struct{}{}})
		}
		if c.Message.Refusal != "" {
			parts = append(parts, rsRefusal{Type: "refusal", Refusal: c.Message.Refusal})
		}
		if len(parts) > 0 {
			r.Output = append(r.Output, rsMessageItem{ID: ids.message(), Type: "message", Status: status,
				Role: "assistant", Content: parts})
		}
		for i, tc := range c.Message.ToolCalls {
			r.Output = append(r.Output, rsFunctionCallItem{ID: ids.call(i), Type: "function_call", Status: status,
				Arguments: tc.Function.Arguments, CallID: ids.callID(tc.ID, i), Name: tc.Function.Name})
		}
	}
	r.Usage = in.Usage.responses()
	return appendJSON(dst, r), nil
}

// newResponse is a response object in progress, echoing the request's settings.
func newResponse(id string, e *rsEcho, created int64, model string) *rsResponse {
	if created == 0 {
		created = now().Unix()
	}
	if model == "" {
		model = e.Model
	}
	return &rsResponse{
		ID: id, Object: "response", CreatedAt: created, Status: "in_progress",
		Instructions: e.Instructions, MaxOutputTokens: e.MaxOutputTokens, Model: model, Output: []any{},
		ParallelToolCalls: e.ParallelToolCalls == nil || *e.ParallelToolCalls,
		Reasoning:         orRaw(e.Reasoning, "null"), Temperature: orFloat(e.Temperature, 1),
		Text: orRaw(e.Text, `{"format":{"type":"text"}}`), ToolChoice: orRaw(e.ToolChoice, `"auto"`),
		Tools: orRaw(e.Tools, `[]`), TopP: orFloat(e.TopP, 1), Truncation: "disabled",
		Metadata: orRaw(e.Metadata, `{}`),
	}
}

// finish sets the status for the chat finish_reason: length and content_filter make
// the response incomplete, anything else completed.
func (r *rsResponse) finish(reason string) {
	r.Status = "completed"
	switch reason {
	case "length":
		r.Status, r.IncompleteDetails = "incomplete", &rsIncomplete{Reason: "max_output_tokens"}
	case "content_filter":
		r.Status, r.IncompleteDetails = "incomplete", &rsIncomplete{Reason: "content_filter"}
	}
}

// itemStatus is the status of the output items of a finished response: an incomplete
// response's items are incomplete too.
func (r *rsResponse) itemStatus() string {
	if r.Status == "incomplete" {
		return "incomplete"
	}
	return "completed"
}

func orRaw(raw json.RawMessage, def string) json.RawMessage {
	if !isSet(raw) {
		return json.RawMessage(def)
	}
	return raw
}

func orFloat(f *float64, def float64) float64 {
	if f == nil {
		return def
	}
	return *f
}

// readEcho reads the request settings a response echoes. The request was translated
// already, so it is valid; a body that is not yields the defaults.
func readEcho(req []byte) rsEcho {
	var e rsEcho
	if json.Unmarshal(req, &e) != nil {
		return rsEcho{}
	}
	if len(e.Metadata) > 0 && e.Metadata[0] != '{' {
		e.Metadata = nil
	}
	e.Tools = echoTools(e.Tools)
	e.Text = echoText(e.Text)
	if len(e.Reasoning) > 0 && e.Reasoning[0] != '{' {
		e.Reasoning = nil
	}
	if e.Instructions != nil && *e.Instructions == "" {
		e.Instructions = nil
	}
	return e
}

// echoTools is the tools a response echoes: the request's function tools with every
// member the API always writes (description, parameters and strict are null when the
// request did not set them).
func echoTools(raw json.RawMessage) json.RawMessage {
	var tools []rsTool
	if !isSet(raw) || json.Unmarshal(raw, &tools) != nil {
		return nil
	}
	out := make([]rsEchoTool, len(tools))
	for i, t := range tools {
		out[i] = rsEchoTool{Type: t.Type, Name: t.Name, Parameters: t.Parameters, Strict: t.Strict}
		if t.Description != "" {
			out[i].Description = &t.Description
		}
		if !isSet(t.Parameters) {
			out[i].Parameters = nil
		}
	}
	return appendJSON(nil, out)
}

// echoText is the text configuration a response echoes: the request's, with the
// default format (text) when it names none.
func echoText(raw json.RawMessage) json.RawMessage {
	var text map[string]json.RawMessage
	if !isSet(raw) || json.Unmarshal(raw, &text) != nil || text == nil {
		return nil
	}
	if !isSet(text["format"]) {
		text["format"] = json.RawMessage(`{"type":"text"}`)
	}
	return appendJSON(nil, text)
}

// rsIDs derives output item ids from the response id: resp_X has message msg_X and
// function calls fc_X_0, fc_X_1, ….
type rsIDs string

func itemIDs(id string) rsIDs {
	base := strings.TrimPrefix(id, "resp_")
	if base == "" {
		base = "berry"
	}
	return rsIDs(base)
}

func (b rsIDs) message() string { return "msg_" + string(b) }

func (b rsIDs) call(i int) string { return "fc_" + string(b) + "_" + strconv.Itoa(i) }

// callID is a tool call's id, or one made up for a server that sent none: the client
// needs it to send the call's output back.
func (b rsIDs) callID(id string, i int) string {
	if id != "" {
		return id
	}
	return "call_" + string(b) + "_" + strconv.Itoa(i)
}

// ResponsesEvent classifies a Responses API stream event for the proxy's failover and
// end-of-stream rules. It is a set of flags, because the categories overlap:
// response.completed is both content and the stream's end, response.failed both its
// end and an error.
type ResponsesEvent uint8

const (
	// ResponsesContent marks an event that carries output the client must not lose,
	// so the request can no longer fail over: any *.delta event, the
	// response.output_item.added of a function_call, and response.completed or
	// response.incomplete (an answer, even one without deltas).
	ResponsesContent ResponsesEvent = 1 << iota
	// ResponsesDone marks the event that ends a Responses stream properly:
	// response.completed, response.incomplete or response.failed. The API sends no
	// [DONE].
	ResponsesDone
	// ResponsesError marks a failure: an "error" event, response.failed, or (from
	// servers that answer chat-style) a nameless event whose data has an "error"
	// member.
	ResponsesError
)

// ResponsesEventKind classifies one Responses API SSE event by its event name, or,
// when it has none, by its data's "type". It returns 0 for every other event
// (response.created, response.in_progress, response.output_item.added of a message,
// *.done events, keep-alives).
func ResponsesEventKind(name, data []byte) ResponsesEvent {
	typ := name
	if len(typ) == 0 {
		d := bytes.TrimSpace(data)
		if len(d) == 0 || d[0] != '{' {
			return 0
		}
		var v struct {
			Type  string          `json:"type"`
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(d, &v) != nil {
			return 0
		}
		if v.Type == "" && isSet(v.Error) {
			return ResponsesError
		}
		typ = []byte(v.Type)
	}
	switch string(typ) {
	case "error":
		return ResponsesError
	case "response.failed":
		return ResponsesDone | ResponsesError
	case "response.completed", "response.incomplete":
		return ResponsesContent | ResponsesDone
	case "response.output_item.added":
		var v struct {
			Item struct {
				Type string `json:"type"`
			} `json:"item"`
		}
		if json.Unmarshal(data, &v) == nil && v.Item.Type == "function_call" {
			return ResponsesContent
		}
		return 0
	}
	if bytes.HasSuffix(typ, []byte(".delta")) {
		return ResponsesContent
	}
	return 0
}

// Wire types of the Responses API (prefix rs), limited to what the translation reads
// or writes.

type rsRequest struct {
	Model              string          `json:"model"`
	Input              json.RawMessage `json:"input"`
	Instructions       *string         `json:"instructions"`
	Tools              []rsTool        `json:"tools"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	ParallelToolCalls  *bool           `json:"parallel_tool_calls"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	Temperature        *float64        `json:"temperature"`
	TopP               *float64        `json:"top_p"`
	User               string          `json:"user"`
	SafetyIdentifier   string          `json:"safety_identifier"`
	Text               *rsTextConfig   `json:"text"`
	Reasoning          *rsReasoning    `json:"reasoning"`
	Stream             bool            `json:"stream"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Conversation       json.RawMessage `json:"conversation"`
	Prompt             json.RawMessage `json:"prompt"`
	Background         *bool           `json:"background"`
}

type rsTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Strict      *bool           `json:"strict"`
}

type rsTextConfig struct {
	Format *struct {
		Type        string          `json:"type"`
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Schema      json.RawMessage `json:"schema"`
		Strict      *bool           `json:"strict"`
	} `json:"format"`
}

type rsReasoning struct {
	Effort *string `json:"effort"`
}

// rsItem is any input item, as read.
type rsItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"` // string or []rsPart
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"` // string or []rsPart
}

type rsPart struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	Refusal  string          `json:"refusal"`
	ImageURL json.RawMessage `json:"image_url"`
	FileID   string          `json:"file_id"`
	Detail   string          `json:"detail"`
}

// rsChatRequest is the chat request written: oaChatRequest's members plus the ones
// only this translation sends.
type rsChatRequest struct {
	Model             string                `json:"model"`
	Messages          []oaMessage           `json:"messages"`
	MaxTokens         *int                  `json:"max_tokens,omitempty"`
	Temperature       *float64              `json:"temperature,omitempty"`
	TopP              *float64              `json:"top_p,omitempty"`
	Stream            bool                  `json:"stream,omitempty"`
	StreamOptions     *oaStreamOptions      `json:"stream_options,omitempty"`
	Tools             []rsChatTool          `json:"tools,omitempty"`
	ToolChoice        json.RawMessage       `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool                 `json:"parallel_tool_calls,omitempty"`
	ResponseFormat    *rsChatResponseFormat `json:"response_format,omitempty"`
	ReasoningEffort   string                `json:"reasoning_effort,omitempty"`
	User              string                `json:"user,omitempty"`
}

type rsChatTool struct {
	Type     string         `json:"type"`
	Function rsChatFunction `json:"function"`
}

type rsChatFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

type rsChatResponseFormat struct {
	Type       string            `json:"type"`
	JSONSchema *rsChatJSONSchema `json:"json_schema,omitempty"`
}

type rsChatJSONSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema"`
	Strict      *bool           `json:"strict,omitempty"`
}

// rsChatReply is a chat.completion or chat.completion.chunk as read back.
type rsChatReply struct {
	ID      string         `json:"id"`
	Created int64          `json:"created"`
	Model   string         `json:"model"`
	Choices []rsChatChoice `json:"choices"`
	Usage   *rsChatUsage   `json:"usage"`
	Error   *oaErrorIn     `json:"error"`
}

type rsChatChoice struct {
	Index        int           `json:"index"`
	Message      rsChatContent `json:"message"`
	Delta        rsChatContent `json:"delta"`
	FinishReason *string       `json:"finish_reason"`
}

// rsChatContent is a message or a stream delta.
type rsChatContent struct {
	Content   json.RawMessage `json:"content"`
	Refusal   string          `json:"refusal"`
	ToolCalls []oaToolCall    `json:"tool_calls"`
}

// choice is the first choice (index 0), which is the answer; nil if there is none.
func (r *rsChatReply) choice() *rsChatChoice {
	for i := range r.Choices {
		if r.Choices[i].Index == 0 {
			return &r.Choices[i]
		}
	}
	return nil
}

type rsChatUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// responses is the usage in the Responses API's shape; nil when unknown.
func (u *rsChatUsage) responses() *rsUsage {
	if u == nil {
		return nil
	}
	out := &rsUsage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	if out.TotalTokens == 0 {
		out.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	if d := u.PromptTokensDetails; d != nil {
		out.InputTokensDetails.CachedTokens = d.CachedTokens
	}
	if d := u.CompletionTokensDetails; d != nil {
		out.OutputTokensDetails.ReasoningTokens = d.ReasoningTokens
	}
	return out
}

// rsEcho is the part of the client's request a response echoes.
type rsEcho struct {
	Model             string          `json:"model"`
	Instructions      *string         `json:"instructions"`
	MaxOutputTokens   *int            `json:"max_output_tokens"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls"`
	Temperature       *float64        `json:"temperature"`
	TopP              *float64        `json:"top_p"`
	ToolChoice        json.RawMessage `json:"tool_choice"`
	Tools             json.RawMessage `json:"tools"`
	Text              json.RawMessage `json:"text"`
	Reasoning         json.RawMessage `json:"reasoning"`
	Metadata          json.RawMessage `json:"metadata"`
}

type rsEchoTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description *string         `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Strict      *bool           `json:"strict"`
}

type rsResponse struct {
	ID                 string          `json:"id"`
	Object             string          `json:"object"`
	CreatedAt          int64           `json:"created_at"`
	Status             string          `json:"status"`
	Background         bool            `json:"background"`
	Error              *rsError        `json:"error"`
	IncompleteDetails  *rsIncomplete   `json:"incomplete_details"`
	Instructions       *string         `json:"instructions"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	Model              string          `json:"model"`
	Output             []any           `json:"output"` // rsMessageItem, rsFunctionCallItem
	ParallelToolCalls  bool            `json:"parallel_tool_calls"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Reasoning          json.RawMessage `json:"reasoning"`
	Store              bool            `json:"store"`
	Temperature        float64         `json:"temperature"`
	Text               json.RawMessage `json:"text"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Tools              json.RawMessage `json:"tools"`
	TopP               float64         `json:"top_p"`
	Truncation         string          `json:"truncation"`
	Usage              *rsUsage        `json:"usage"`
	Metadata           json.RawMessage `json:"metadata"`
}

type rsError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type rsIncomplete struct {
	Reason string `json:"reason"`
}

type rsMessageItem struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Status  string `json:"status"`
	Role    string `json:"role"`
	Content []any  `json:"content"` // rsOutputText, rsRefusal
}

type rsOutputText struct {
	Type        string     `json:"type"`
	Text        string     `json:"text"`
	Annotations []struct{} `json:"annotations"`
}

type rsRefusal struct {
	Type    string `json:"type"`
	Refusal string `json:"refusal"`
}

type rsFunctionCallItem struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	Arguments string `json:"arguments"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
}

type rsUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}
