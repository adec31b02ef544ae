package upstreamsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// OpenAI Responses API:
//
//	POST   /v1/responses                      create (buffered or "stream": true)
//	GET    /v1/responses/{id}                 retrieve a stored response
//	DELETE /v1/responses/{id}                 delete it
//	POST   /v1/responses/{id}/cancel          cancel a background response
//	GET    /v1/responses/{id}/input_items     its input items (limit, order, after)
//
// The same routes are served under Azure's /openai/v1/responses (no api-version needed)
// and /openai/responses?api-version=… (see azure.go).
//
// A response answers with one output item: a function_call of the request's first
// function tool (or the one tool_choice names) when the request offers function tools
// and its last input item is not a function_call_output, else an assistant message
// saying ResponsesReply(Options.Name, turn), with "; tool result: <output>" appended
// after a function_call_output. The turn is 1, plus the turn of the
// previous_response_id's response, plus one per assistant message or function_call in
// the input (history a stateless client replays). Streams split the text into
// Options.Chunks deltas.
//
// Unless the request says "store": false, the response and its input items are kept in
// memory (the latest maxStoredResponses per Server, up to maxStoredBytes of input) for
// the by-id routes and for
// previous_response_id. A Server only knows its own responses: another instance
// answers previous_response_id with 400 previous_response_not_found, as a different
// provider account would. A "background": true response is created queued, completes
// the first time it is retrieved, and can be cancelled until then.

// The store's bounds; the oldest responses are forgotten first. Benchmarks send large
// inputs, hence the bound on their bytes.
const (
	maxStoredResponses = 10000
	maxStoredBytes     = 256 << 20
)

// ResponsesReply is the text of a Responses API answer at a turn of the conversation.
func ResponsesReply(name string, turn int) string {
	return "Hello from " + name + " (turn " + strconv.Itoa(turn) + ")"
}

type respRequest struct {
	Model              string            `json:"model"`
	Input              json.RawMessage   `json:"input"`
	Instructions       json.RawMessage   `json:"instructions"`
	PreviousResponseID string            `json:"previous_response_id"`
	Store              *bool             `json:"store"`
	Stream             bool              `json:"stream"`
	Background         bool              `json:"background"`
	Tools              []json.RawMessage `json:"tools"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	ParallelToolCalls  *bool             `json:"parallel_tool_calls"`
	MaxOutputTokens    *int64            `json:"max_output_tokens"`
	Temperature        *float64          `json:"temperature"`
	TopP               *float64          `json:"top_p"`
	Text               json.RawMessage   `json:"text"`
	Reasoning          json.RawMessage   `json:"reasoning"`
	Truncation         string            `json:"truncation"`
	Metadata           json.RawMessage   `json:"metadata"`
	User               *string           `json:"user"`
}

// functionTools returns the request's function tools (built-in tools are ignored).
func (r *respRequest) functionTools() []simTool {
	var out []simTool
	for _, raw := range r.Tools {
		var t struct {
			Type       string          `json:"type"`
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		}
		if json.Unmarshal(raw, &t) == nil && t.Type == "function" && t.Name != "" {
			out = append(out, simTool{Name: t.Name, Parameters: t.Parameters})
		}
	}
	return out
}

// toolChoice reads tool_choice as "none", "" (auto or required) or a function's name.
func (r *respRequest) toolChoice() string {
	var s string
	if json.Unmarshal(r.ToolChoice, &s) == nil {
		if s == "none" {
			return "none"
		}
		return ""
	}
	var named struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(r.ToolChoice, &named)
	return named.Name
}

// respObject is OpenAI's Response, fields in the order OpenAI sends them.
type respObject struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	CreatedAt          int64             `json:"created_at"`
	Status             string            `json:"status"`
	Background         bool              `json:"background"`
	Error              *respError        `json:"error"`
	IncompleteDetails  any               `json:"incomplete_details"`
	Instructions       json.RawMessage   `json:"instructions"`
	MaxOutputTokens    *int64            `json:"max_output_tokens"`
	Model              string            `json:"model"`
	Output             []any             `json:"output"`
	ParallelToolCalls  bool              `json:"parallel_tool_calls"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Reasoning          json.RawMessage   `json:"reasoning"`
	ServiceTier        string            `json:"service_tier"`
	Store              bool              `json:"store"`
	Temperature        float64           `json:"temperature"`
	Text               json.RawMessage   `json:"text"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	Tools              []json.RawMessage `json:"tools"`
	TopP               float64           `json:"top_p"`
	Truncation         string            `json:"truncation"`
	Usage              *respUsage        `json:"usage"`
	User               *string           `json:"user"`
	Metadata           json.RawMessage   `json:"metadata"`
}

type respError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type respUsage struct {
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

type respMessage struct {
	ID      string        `json:"id"`
	Type    string        `json:"type"`
	Status  string        `json:"status"`
	Role    string        `json:"role"`
	Content []respTextOut `json:"content"`
}

type respTextOut struct {
	Type        string `json:"type"`
	Annotations []any  `json:"annotations"`
	Text        string `json:"text"`
}

func outputText(text string) respTextOut {
	return respTextOut{Type: "output_text", Annotations: []any{}, Text: text}
}

type respFunctionCall struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	Arguments string `json:"arguments"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
}

// inputItem is what the simulator reads of an input item.
type inputItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

// words counts the item's text the way the simulator counts tokens.
func (it *inputItem) words() int {
	switch it.Type {
	case "message":
		return words(it.Content)
	case "function_call":
		return len(strings.Fields(it.Arguments))
	case "function_call_output":
		return words(it.Output)
	}
	return 0
}

// paramError is a 400 invalid_request_error about one parameter.
type paramError struct{ msg, param, code string }

// obj is a JSON object that keeps its keys in the order given, as OpenAI's events do.
type obj []field

type field struct {
	k string
	v any
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		v, err := json.Marshal(f.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// uniqueID is prefix plus an id no other Server (in this or another process) hands out,
// so one instance cannot mistake another's response for its own.
func (s *Server) uniqueID(prefix string) string {
	return prefix + s.tag + strconv.FormatUint(s.ids.Add(1), 36)
}

// responsesRoute reports whether an OpenAI route (without /v1) belongs to the Responses
// API, and the part after /responses/.
func responsesRoute(route string) (sub string, ok bool) {
	if route == "/responses" {
		return "", true
	}
	sub, ok = strings.CutPrefix(route, "/responses/")
	return sub, ok && sub != ""
}

// responsesAPI serves the Responses routes; sub is "" (create), "{id}", "{id}/cancel"
// or "{id}/input_items". az selects Azure's shapes for the errors Azure words its own.
func (s *Server) responsesAPI(ctx *fasthttp.RequestCtx, o *Options, sub string, az bool) {
	id, action, _ := strings.Cut(sub, "/")
	method := ""
	switch {
	case sub == "":
		method = fasthttp.MethodPost
	case id == "" || strings.Contains(action, "/"):
	case action == "" && (ctx.IsGet() || ctx.IsDelete()):
		method = string(ctx.Method())
	case action == "":
		method = fasthttp.MethodGet
	case action == "cancel":
		method = fasthttp.MethodPost
	case action == "input_items":
		method = fasthttp.MethodGet
	}
	switch {
	case method == "" && az:
		writeAzureError(ctx, fasthttp.StatusNotFound, "404", "Resource not found", nil)
		return
	case method == "":
		writeError(ctx, fasthttp.StatusNotFound, "invalid_request_error", "",
			"Invalid URL ("+string(ctx.Method())+" "+string(ctx.Path())+")")
		return
	case string(ctx.Method()) != method && az:
		writeAzureError(ctx, fasthttp.StatusMethodNotAllowed, "405", "Method not allowed", nil)
		return
	case string(ctx.Method()) != method:
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "invalid_request_error", "",
			"Method "+string(ctx.Method())+" not allowed on "+string(ctx.Path()))
		return
	}
	if sub == "" {
		s.createResponse(ctx, o, az)
		return
	}
	if o.FailStatus != 0 {
		if az {
			writeAzureFailure(ctx, o)
		} else {
			writeFailure(ctx, o)
		}
		return
	}
	switch {
	case action == "cancel":
		s.cancelResponse(ctx, id)
	case action == "input_items":
		s.listInputItems(ctx, id)
	case ctx.IsDelete():
		if !s.responses.remove(id) {
			writeResponseNotFound(ctx, id)
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, obj{{"id", id}, {"object", "response.deleted"}, {"deleted", true}})
	default:
		r, ok := s.responses.get(id)
		if !ok {
			writeResponseNotFound(ctx, id)
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, r)
	}
}

func (s *Server) createResponse(ctx *fasthttp.RequestCtx, o *Options, az bool) {
	var req respRequest
	err := json.Unmarshal(ctx.PostBody(), &req)
	if az {
		if o.FailStatus != 0 {
			writeAzureFailure(ctx, o)
			return
		}
		if err == nil && len(o.Models) > 0 && !slices.Contains(o.Models, req.Model) {
			writeAzureError(ctx, fasthttp.StatusNotFound, "DeploymentNotFound", "The API deployment for this "+
				"resource does not exist. If you created the deployment within the last 5 minutes, please wait a "+
				"moment and try again.", nil)
			return
		}
	}
	if !s.admit(ctx, o, err, req.Model) {
		return
	}
	store := req.Store == nil || *req.Store
	if req.Background && !store {
		writeParamError(ctx, fasthttp.StatusBadRequest, "Background responses must be stored: "+
			"'background': true requires 'store' to be true.", "background", "")
		return
	}
	raws, items, perr := s.inputItems(req.Input)
	if perr != nil {
		writeParamError(ctx, fasthttp.StatusBadRequest, perr.msg, perr.param, perr.code)
		return
	}
	prevTurn, prevTokens := 0, 0
	if req.PreviousResponseID != "" {
		var ok bool
		if prevTurn, prevTokens, ok = s.responses.context(req.PreviousResponseID); !ok {
			writeParamError(ctx, fasthttp.StatusBadRequest, "Previous response with id '"+req.PreviousResponseID+
				"' not found.", "previous_response_id", "previous_response_not_found")
			return
		}
	}

	turn := 1 + prevTurn
	input := prevTokens + instructionWords(req.Instructions)
	for i := range items {
		input += items[i].words()
		if items[i].Type == "function_call" || items[i].Type == "message" && items[i].Role == "assistant" {
			turn++
		}
	}
	text := ResponsesReply(o.Name, turn)
	var call *respFunctionCall
	if n := len(items); n > 0 && items[n-1].Type == "function_call_output" {
		text += "; tool result: " + contentText(items[n-1].Output)
	} else if t, ok := chooseTool(req.functionTools(), req.toolChoice()); ok {
		call = &respFunctionCall{ID: s.uniqueID("fc_"), Type: "function_call", Status: "completed",
			Arguments: toolArguments(t.Parameters), CallID: s.uniqueID("call_"), Name: t.Name}
	}
	output := len(strings.Fields(text))
	if call != nil {
		output = len(strings.Fields(call.Arguments)) + 1
	}
	u := &respUsage{InputTokens: input, OutputTokens: output, TotalTokens: input + output}
	u.InputTokensDetails.CachedTokens = prevTokens

	r := respObject{
		ID: s.uniqueID("resp_"), Object: "response", CreatedAt: time.Now().Unix(), Status: "completed",
		Background: req.Background, Instructions: req.Instructions, MaxOutputTokens: req.MaxOutputTokens,
		Model: req.Model, ParallelToolCalls: req.ParallelToolCalls == nil || *req.ParallelToolCalls,
		Reasoning: req.Reasoning, ServiceTier: "default", Store: store, Temperature: 1, Text: req.Text,
		ToolChoice: req.ToolChoice, Tools: req.Tools, TopP: 1, Truncation: req.Truncation, Usage: u,
		User: req.User, Metadata: req.Metadata,
	}
	if req.PreviousResponseID != "" {
		r.PreviousResponseID = &req.PreviousResponseID
	}
	if req.Temperature != nil {
		r.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		r.TopP = *req.TopP
	}
	if isNull(r.Reasoning) {
		r.Reasoning = json.RawMessage(`{"effort":null,"summary":null}`)
	}
	if isNull(r.Text) {
		r.Text = json.RawMessage(`{"format":{"type":"text"}}`)
	}
	if isNull(r.ToolChoice) {
		r.ToolChoice = json.RawMessage(`"auto"`)
	}
	if r.Tools == nil {
		r.Tools = []json.RawMessage{}
	}
	if r.Truncation == "" {
		r.Truncation = "disabled"
	}
	if isNull(r.Metadata) {
		r.Metadata = json.RawMessage(`{}`)
	}
	var msg *respMessage
	if call != nil {
		r.Output = []any{*call}
	} else {
		msg = &respMessage{ID: s.uniqueID("msg_"), Type: "message", Status: "completed", Role: "assistant",
			Content: []respTextOut{outputText(text)}}
		r.Output = []any{*msg}
	}

	entry := &storedResponse{resp: r, input: raws, turn: turn, tokens: input + output}
	for _, in := range raws {
		entry.size += len(in)
	}
	reply := r
	switch {
	case req.Stream && o.FailAfterChunks > 0:
		// The client will not see this response finish; neither does a later retrieval.
		entry.resp.Status, entry.resp.Usage = "failed", nil
		entry.resp.Error = &respError{Code: "server_error", Message: "The simulator cut the stream short."}
	case req.Background && !req.Stream:
		reply.Status, reply.Output, reply.Usage = "queued", []any{}, nil
		entry.resp, entry.pending = reply, &r
	}
	if store {
		s.responses.put(entry)
	}
	if !req.Stream {
		writeJSON(ctx, fasthttp.StatusOK, reply)
		return
	}

	var events [][]byte
	ev := func(typ string, fields ...field) {
		e := append(obj{{"type", typ}, {"sequence_number", len(events)}}, fields...)
		events = append(events, anEvent(typ, e))
	}
	start := r
	start.Status, start.Output, start.Usage = "in_progress", []any{}, nil
	ev("response.created", field{"response", start})
	ev("response.in_progress", field{"response", start})
	at := []field{{"output_index", 0}}
	if call != nil {
		head := *call
		head.Status, head.Arguments = "in_progress", ""
		ev("response.output_item.added", append(at, field{"item", head})...)
		for _, p := range split(call.Arguments, 2) {
			ev("response.function_call_arguments.delta", field{"item_id", call.ID}, at[0], field{"delta", p})
		}
		ev("response.function_call_arguments.done", field{"item_id", call.ID}, at[0], field{"arguments", call.Arguments})
		ev("response.output_item.done", append(at, field{"item", *call})...)
	} else {
		head := *msg
		head.Status, head.Content = "in_progress", []respTextOut{}
		ev("response.output_item.added", append(at, field{"item", head})...)
		part := []field{{"item_id", msg.ID}, at[0], {"content_index", 0}}
		ev("response.content_part.added", append(part, field{"part", outputText("")})...)
		for _, p := range split(text, o.Chunks) {
			ev("response.output_text.delta", append(part, field{"delta", p}, field{"logprobs", []any{}})...)
		}
		ev("response.output_text.done", append(part, field{"text", text}, field{"logprobs", []any{}})...)
		ev("response.content_part.done", append(part, field{"part", outputText(text)})...)
		ev("response.output_item.done", append(at, field{"item", *msg})...)
	}
	ev("response.completed", field{"response", r})
	s.stream(ctx, o, events[:len(events)-1], events[len(events)-1])
}

// inputItems reads input (a string or an array of items) into the items to store, each
// with an id and message content as parts, and what the simulator needs of them.
func (s *Server) inputItems(raw json.RawMessage) ([]json.RawMessage, []inputItem, *paramError) {
	if isNull(raw) {
		return nil, nil, &paramError{"Missing required parameter: 'input'.", "input", "missing_required_parameter"}
	}
	var text string
	if json.Unmarshal(raw, &text) == nil {
		content, _ := json.Marshal([]any{obj{{"type", "input_text"}, {"text", text}}})
		item, _ := json.Marshal(obj{{"id", s.uniqueID("msg_")}, {"type", "message"}, {"role", "user"},
			{"content", json.RawMessage(content)}})
		return []json.RawMessage{item}, []inputItem{{Type: "message", Role: "user", Content: content}}, nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil, nil, &paramError{"Invalid type for 'input': expected one of a string or an array of input items.",
			"input", "invalid_type"}
	}
	raws, items := make([]json.RawMessage, len(list)), make([]inputItem, len(list))
	for i, el := range list {
		param := "input[" + strconv.Itoa(i) + "]"
		var m map[string]json.RawMessage
		it := &items[i]
		if json.Unmarshal(el, &m) != nil || m == nil || json.Unmarshal(el, it) != nil {
			return nil, nil, &paramError{"Invalid type for '" + param + "': expected an input item object.", param, "invalid_type"}
		}
		if it.Type == "" && it.Role != "" {
			it.Type = "message"
			m["type"], _ = json.Marshal("message")
		}
		prefix := "item_"
		switch it.Type {
		case "":
			return nil, nil, &paramError{"Missing required parameter: '" + param + ".type'.", param + ".type", "missing_required_parameter"}
		case "message":
			prefix = "msg_"
			if !slices.Contains([]string{"user", "assistant", "system", "developer"}, it.Role) {
				return nil, nil, &paramError{fmt.Sprintf("Invalid value: '%s'. Supported values are: 'assistant', "+
					"'system', 'developer', and 'user'.", it.Role), param + ".role", "invalid_value"}
			}
			if isNull(it.Content) {
				return nil, nil, &paramError{"Missing required parameter: '" + param + ".content'.", param + ".content", "missing_required_parameter"}
			}
			if json.Unmarshal(it.Content, &text) == nil {
				part := obj{{"type", "input_text"}, {"text", text}}
				if it.Role == "assistant" {
					part = obj{{"type", "output_text"}, {"annotations", []any{}}, {"text", text}}
				}
				m["content"], _ = json.Marshal([]any{part})
			}
		case "function_call":
			prefix = "fc_"
		}
		if _, ok := m["id"]; !ok {
			m["id"], _ = json.Marshal(s.uniqueID(prefix))
		}
		// id and type first, as OpenAI lists items.
		item := obj{{"id", m["id"]}, {"type", m["type"]}}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if k != "id" && k != "type" {
				item = append(item, field{k, m[k]})
			}
		}
		raws[i], _ = json.Marshal(item)
	}
	return raws, items, nil
}

func instructionWords(raw json.RawMessage) int {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return len(strings.Fields(s))
	}
	var items []inputItem
	_ = json.Unmarshal(raw, &items)
	n := 0
	for i := range items {
		if items[i].Type == "" {
			items[i].Type = "message"
		}
		n += items[i].words()
	}
	return n
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

func (s *Server) cancelResponse(ctx *fasthttp.RequestCtx, id string) {
	r, ok, err := s.responses.cancel(id)
	switch {
	case !ok:
		writeResponseNotFound(ctx, id)
	case err != "":
		writeParamError(ctx, fasthttp.StatusBadRequest, err, "", "")
	default:
		writeJSON(ctx, fasthttp.StatusOK, r)
	}
}

// listInputItems answers OpenAI's cursor page of a response's input items: limit (1 to
// 100, default 20), order (asc or desc, the default) and after (an item id).
func (s *Server) listInputItems(ctx *fasthttp.RequestCtx, id string) {
	items, ok := s.responses.inputs(id)
	if !ok {
		writeResponseNotFound(ctx, id)
		return
	}
	args := ctx.QueryArgs()
	limit := 20
	if v := args.Peek("limit"); v != nil {
		n, err := fasthttp.ParseUint(v)
		if err != nil || n < 1 || n > 100 {
			writeParamError(ctx, fasthttp.StatusBadRequest, "Invalid 'limit': integer below minimum value or "+
				"above maximum value. Expected a value between 1 and 100.", "limit", "integer_out_of_range")
			return
		}
		limit = n
	}
	switch order := string(args.Peek("order")); order {
	case "", "desc":
		slices.Reverse(items)
	case "asc":
	default:
		writeParamError(ctx, fasthttp.StatusBadRequest, "Invalid value: '"+order+"'. Supported values are: 'asc' and 'desc'.",
			"order", "invalid_value")
		return
	}
	if after := string(args.Peek("after")); after != "" {
		i := slices.IndexFunc(items, func(it json.RawMessage) bool { return itemID(it) == after })
		items = items[i+1:] // all of them when after is unknown
	}
	more := len(items) > limit
	items = items[:min(limit, len(items))]
	var first, last any // null for an empty page
	if len(items) > 0 {
		first, last = itemID(items[0]), itemID(items[len(items)-1])
	}
	writeJSON(ctx, fasthttp.StatusOK, obj{{"object", "list"}, {"data", items}, {"first_id", first},
		{"last_id", last}, {"has_more", more}})
}

func itemID(raw json.RawMessage) string {
	var it struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &it)
	return it.ID
}

func writeResponseNotFound(ctx *fasthttp.RequestCtx, id string) {
	writeParamError(ctx, fasthttp.StatusNotFound, "Response with id '"+id+"' not found.", "", "")
}

// writeParamError writes an OpenAI invalid_request_error; empty param and code are null.
func writeParamError(ctx *fasthttp.RequestCtx, status int, msg, param, code string) {
	e := apiError{Message: msg, Type: "invalid_request_error"}
	if param != "" {
		e.Param = &param
	}
	if code != "" {
		e.Code = &code
	}
	writeJSON(ctx, status, struct {
		Error apiError `json:"error"`
	}{e})
}

// storedResponse is a response kept for the by-id routes and previous_response_id.
type storedResponse struct {
	resp  respObject
	input []json.RawMessage
	turn  int
	// tokens is the conversation's size after this response: its input (which
	// includes the earlier turns) plus its output.
	tokens int
	// pending is the finished response of a queued background response; it replaces
	// resp at the first retrieval.
	pending *respObject
	size    int // bytes of input, for maxStoredBytes
}

// responseStore holds a Server's stored responses, forgetting the oldest beyond
// maxStoredResponses. The zero value is ready to use.
type responseStore struct {
	mu   sync.Mutex
	byID map[string]*storedResponse
	// order lists ids oldest first; deleted ids linger until evicted or compacted.
	order []string
	bytes int
}

func (st *responseStore) put(e *storedResponse) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byID == nil {
		st.byID = make(map[string]*storedResponse)
	}
	st.byID[e.resp.ID] = e
	st.order = append(st.order, e.resp.ID)
	st.bytes += e.size
	for len(st.byID) > maxStoredResponses || st.bytes > maxStoredBytes && len(st.byID) > 1 {
		st.removeLocked(st.order[0])
		st.order = st.order[1:]
	}
	if len(st.order) > 2*maxStoredResponses {
		st.order = slices.DeleteFunc(st.order, func(id string) bool { return st.byID[id] == nil })
	}
}

func (st *responseStore) context(id string) (turn, tokens int, ok bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e, ok := st.byID[id]
	if !ok {
		return 0, 0, false
	}
	return e.turn, e.tokens, true
}

func (st *responseStore) get(id string) (respObject, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e, ok := st.byID[id]
	if !ok {
		return respObject{}, false
	}
	if e.pending != nil {
		e.resp, e.pending = *e.pending, nil
	}
	return e.resp, true
}

func (st *responseStore) remove(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.removeLocked(id)
}

func (st *responseStore) removeLocked(id string) bool {
	e, ok := st.byID[id]
	if ok {
		st.bytes -= e.size
		delete(st.byID, id)
	}
	return ok
}

func (st *responseStore) inputs(id string) ([]json.RawMessage, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e, ok := st.byID[id]
	if !ok {
		return nil, false
	}
	return slices.Clone(e.input), true
}

// cancel cancels a queued background response; a cancelled one is returned as it is.
// refusal is the message of a 400 for any other response.
func (st *responseStore) cancel(id string) (r respObject, ok bool, refusal string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e, ok := st.byID[id]
	switch {
	case !ok:
		return respObject{}, false, ""
	case !e.resp.Background:
		return respObject{}, true, "Only responses created with background set to true can be cancelled."
	case e.pending != nil:
		e.pending = nil
		e.resp.Status = "cancelled"
	case e.resp.Status != "cancelled":
		return respObject{}, true, "Cannot cancel a response with status '" + e.resp.Status + "'."
	}
	return e.resp, true, ""
}
