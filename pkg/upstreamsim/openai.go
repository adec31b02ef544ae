package upstreamsim

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// Wire types, limited to the fields a gateway and its tests look at.

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func newUsage(prompt, completion int) *usage {
	return &usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatRequest struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	StreamOptions *streamOptions `json:"stream_options"`
	Tools         []struct {
		Function simTool `json:"function"`
	} `json:"tools"`
	ToolChoice json.RawMessage `json:"tool_choice"`
}

func (r *chatRequest) tools() []simTool {
	out := make([]simTool, len(r.Tools))
	for i, t := range r.Tools {
		out[i] = t.Function
	}
	return out
}

// toolChoice reads tool_choice as "none", "" (auto or required) or a tool's name.
func (r *chatRequest) toolChoice() string {
	var s string
	if json.Unmarshal(r.ToolChoice, &s) == nil {
		if s == "none" {
			return "none"
		}
		return ""
	}
	var named struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	_ = json.Unmarshal(r.ToolChoice, &named)
	return named.Function.Name
}

type toolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function toolFunction `json:"function"`
}

type toolFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

type chatChoice struct {
	Index   int          `json:"index"`
	Message *chatMessage `json:"message,omitempty"`
	Delta   *chatDelta   `json:"delta,omitempty"`
	// A pointer so that stream chunks carry an explicit null, as OpenAI's do.
	FinishReason *string `json:"finish_reason"`
}

type chatMessage struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

type chatDelta struct {
	Role      string     `json:"role,omitempty"`
	Content   string     `json:"content,omitempty"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

type completionRequest struct {
	Model         string          `json:"model"`
	Stream        bool            `json:"stream"`
	Prompt        json.RawMessage `json:"prompt"`
	StreamOptions *streamOptions  `json:"stream_options"`
}

type textCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []textChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

type textChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     int             `json:"dimensions"`
}

type embedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string of little-endian float32s
}

type model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

const (
	defaultDimensions = 8
	maxDimensions     = 4096
	// modelsCreated is a fixed timestamp so model listings are deterministic.
	modelsCreated = 1700000000
)

var (
	finishStop          = "stop"
	finishToolCalls     = "tool_calls"
	finishContentFilter = "content_filter"
)

// Reply is the assistant text the simulator produces for a model; streams deliver the
// same text split into Options.Chunks pieces.
func Reply(name, model string) string { return "hello from " + name + ": " + model }

func (s *Server) chat(ctx *fasthttp.RequestCtx, o *Options) { s.chatAs(ctx, o, nil) }

// chatAs answers a chat completion; model overrides the body's model (Azure takes it
// from the deployment in the URL) and az, when set, adds Azure's annotations.
func (s *Server) chatAs(ctx *fasthttp.RequestCtx, o *Options, az *azureCall) {
	var req chatRequest
	err := json.Unmarshal(ctx.PostBody(), &req)
	if az != nil {
		req.Model = az.deployment
	}
	if !s.admit(ctx, o, err, req.Model) {
		return
	}
	var (
		text   = Reply(o.Name, req.Model)
		prompt = 0
		tool   *toolCall
		last   = ""
	)
	for _, m := range req.Messages {
		prompt += words(m.Content)
		last = m.Role
	}
	if last == "tool" {
		text += "; tool result: " + contentText(req.Messages[len(req.Messages)-1].Content)
	} else if t, ok := chooseTool(req.tools(), req.toolChoice()); ok {
		tool = &toolCall{ID: "call_" + s.newID(), Type: "function"}
		tool.Function.Name, tool.Function.Arguments = t.Name, toolArguments(t.Parameters)
		text = ""
	}
	finish := &finishStop
	if tool != nil {
		finish = &finishToolCalls
	}
	if az != nil && az.filterCompletion {
		finish, text, tool = &finishContentFilter, "", nil
	}
	completion := len(strings.Fields(text))
	if tool != nil {
		completion = len(strings.Fields(tool.Function.Arguments)) + 1
	}
	u := newUsage(prompt, completion)
	id, created := "chatcmpl-"+s.newID(), time.Now().Unix()

	if !req.Stream {
		msg := &chatMessage{Role: "assistant"}
		if tool != nil {
			msg.ToolCalls = []toolCall{*tool}
		} else if az == nil || !az.filterCompletion {
			msg.Content = &text
		}
		writeJSON(ctx, fasthttp.StatusOK, az.decorate(chatCompletion{
			ID: id, Object: "chat.completion", Created: created, Model: req.Model,
			Choices: []chatChoice{{Message: msg, FinishReason: finish}},
			Usage:   u,
		}, true))
		return
	}
	chunk := func(d chatDelta, finish *string) []byte {
		return event(az.decorate(chatCompletion{
			ID: id, Object: "chat.completion.chunk", Created: created, Model: req.Model,
			Choices: []chatChoice{{Delta: &d, FinishReason: finish}},
		}, false))
	}
	var events [][]byte
	if az != nil {
		events = append(events, event(az.promptFilterChunk()))
	}
	events = append(events, chunk(chatDelta{Role: "assistant"}, nil))
	if tool != nil {
		// Like OpenAI: the call's id and name first, then the arguments in pieces.
		zero := 0
		head := *tool
		head.Index, head.Function.Arguments = &zero, ""
		events = append(events, chunk(chatDelta{ToolCalls: []toolCall{head}}, nil))
		for _, p := range split(tool.Function.Arguments, 2) {
			events = append(events, chunk(chatDelta{ToolCalls: []toolCall{{Index: &zero, Function: toolFunction{Arguments: p}}}}, nil))
		}
	} else {
		for _, p := range split(text, o.Chunks) {
			events = append(events, chunk(chatDelta{Content: p}, nil))
		}
	}
	events = append(events, chunk(chatDelta{}, finish))
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		events = append(events, event(chatCompletion{
			ID: id, Object: "chat.completion.chunk", Created: created, Model: req.Model,
			Choices: []chatChoice{}, Usage: u,
		}))
	}
	s.stream(ctx, o, events, doneEvent)
}

func (s *Server) completion(ctx *fasthttp.RequestCtx, o *Options) {
	var req completionRequest
	err := json.Unmarshal(ctx.PostBody(), &req)
	if !s.admit(ctx, o, err, req.Model) {
		return
	}
	text := Reply(o.Name, req.Model)
	u := newUsage(words(req.Prompt), len(strings.Fields(text)))
	id, created := "cmpl-"+s.newID(), time.Now().Unix()
	obj := func(text string, finish *string, u *usage) textCompletion {
		return textCompletion{
			ID: id, Object: "text_completion", Created: created, Model: req.Model,
			Choices: []textChoice{{Text: text, FinishReason: finish}}, Usage: u,
		}
	}

	if !req.Stream {
		writeJSON(ctx, fasthttp.StatusOK, obj(text, &finishStop, u))
		return
	}
	var events [][]byte
	for _, p := range split(text, o.Chunks) {
		events = append(events, event(obj(p, nil, nil)))
	}
	events = append(events, event(obj("", &finishStop, nil)))
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		last := obj("", nil, u)
		last.Choices = []textChoice{}
		events = append(events, event(last))
	}
	s.stream(ctx, o, events, doneEvent)
}

func (s *Server) embeddings(ctx *fasthttp.RequestCtx, o *Options) {
	var req embeddingRequest
	err := json.Unmarshal(ctx.PostBody(), &req)
	if !s.admit(ctx, o, err, req.Model) {
		return
	}
	if len(req.Input) == 0 || string(req.Input) == "null" {
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", "", "'input' is a required property")
		return
	}
	dims := defaultDimensions
	if req.Dimensions > 0 {
		dims = min(req.Dimensions, maxDimensions)
	}
	inputs := embeddingInputs(req.Input)
	data := make([]embedding, len(inputs))
	prompt := 0
	for i, in := range inputs {
		prompt += words(in)
		var vec any = vector(in, dims)
		if req.EncodingFormat == "base64" {
			vec = encodeVector(vec.([]float32))
		}
		data[i] = embedding{Object: "embedding", Index: i, Embedding: vec}
	}
	writeJSON(ctx, fasthttp.StatusOK, struct {
		Object string      `json:"object"`
		Data   []embedding `json:"data"`
		Model  string      `json:"model"`
		Usage  any         `json:"usage"`
	}{"list", data, req.Model, struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	}{prompt, prompt}})
}

func (s *Server) models(ctx *fasthttp.RequestCtx, o *Options) {
	if o.FailStatus != 0 {
		writeFailure(ctx, o)
		return
	}
	ids := o.Models
	if len(ids) == 0 {
		ids = []string{DefaultModel}
	}
	data := make([]model, len(ids))
	for i, id := range ids {
		data[i] = model{ID: id, Object: "model", Created: modelsCreated, OwnedBy: o.Name}
	}
	writeJSON(ctx, fasthttp.StatusOK, struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{"list", data})
}

// admit runs the checks the model endpoints share and reports whether the request may
// proceed; if not, it has written the response. The model is counted before the
// injected failure so that failover tests see which model each attempt asked for, and
// the failure wins over a bad body because FailStatus promises every request fails.
func (s *Server) admit(ctx *fasthttp.RequestCtx, o *Options, decodeErr error, model string) bool {
	if decodeErr == nil && model != "" {
		s.countModel(model)
	}
	switch {
	case o.FailStatus != 0:
		writeFailure(ctx, o)
	case decodeErr != nil:
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", "",
			"We could not parse the JSON body of your request: "+decodeErr.Error())
	case model == "":
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", "",
			"you must provide a model parameter")
	case len(o.Models) > 0 && !slices.Contains(o.Models, model):
		writeError(ctx, fasthttp.StatusNotFound, "invalid_request_error", "model_not_found",
			"The model `"+model+"` does not exist or you do not have access to it.")
	default:
		return true
	}
	return false
}

func (s *Server) newID() string { return "sim" + strconv.FormatUint(s.ids.Add(1), 36) }

// doneEvent ends OpenAI streams.
var doneEvent = []byte("data: [DONE]\n\n")

// stream sends pre-rendered SSE events, pausing ChunkDelay between them and flushing
// each one so clients observe them as they are sent. tail is the closing event
// ([DONE] for OpenAI, message_stop for Anthropic), left out of a truncated stream.
func (s *Server) stream(ctx *fasthttp.RequestCtx, o *Options, events [][]byte, tail []byte) {
	events = append(events, tail)
	delay, done := o.ChunkDelay, s.done

	if o.FailAfterChunks > 0 {
		// fasthttp always finishes a streamed body properly, so take over the raw
		// connection to be able to break it.
		events = events[:min(o.FailAfterChunks, len(events)-1)]
		name := o.Name
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(c net.Conn) { writeTruncated(c, name, events, delay, done) })
		return
	}

	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		for i, ev := range events {
			if i > 0 && !pause(delay, done) {
				return
			}
			if _, err := w.Write(ev); err != nil {
				return
			}
			// A failed flush means the client went away.
			if w.Flush() != nil {
				return
			}
		}
	})
}

// writeTruncated writes a chunked event-stream response by hand and returns without
// the terminating chunk; fasthttp then closes the connection.
func writeTruncated(c net.Conn, name string, events [][]byte, delay time.Duration, done <-chan struct{}) {
	_, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nServer: berry-sim\r\nContent-Type: text/event-stream\r\n"+
		"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\nX-Sim-Name: %s\r\n\r\n", name)
	for i, ev := range events {
		if err != nil || i > 0 && !pause(delay, done) {
			return
		}
		_, err = fmt.Fprintf(c, "%x\r\n%s\r\n", len(ev), ev)
	}
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	// Our types always encode, and the destination is an in-memory buffer. Providers
	// write <, > and & as they are.
	enc := json.NewEncoder(ctx)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(ctx *fasthttp.RequestCtx, status int, typ, code, msg string) {
	e := apiError{Message: msg, Type: typ}
	if code != "" {
		e.Code = &code
	}
	writeJSON(ctx, status, struct {
		Error apiError `json:"error"`
	}{e})
}

// writeFailure answers an injected failure with the type and code OpenAI uses for that
// status, so gateways classify it as they would a real one; Options.FailCode replaces
// the code, or the whole body for the error classes writeErrorClass knows.
func writeFailure(ctx *fasthttp.RequestCtx, o *Options) {
	if writeErrorClass(ctx, o) {
		return
	}
	typ, code := "invalid_request_error", ""
	switch {
	case o.FailStatus == fasthttp.StatusUnauthorized:
		code = "invalid_api_key"
	case o.FailStatus == fasthttp.StatusTooManyRequests:
		typ, code = "requests", "rate_limit_exceeded"
	case o.FailStatus >= 500:
		typ = "server_error"
	}
	if o.FailCode != "" {
		code = o.FailCode
	}
	writeError(ctx, o.FailStatus, typ, code, fmt.Sprintf("simulated %d from %s", o.FailStatus, o.Name))
}

func event(v any) []byte {
	b, _ := json.Marshal(v) // our types always encode
	return append(append([]byte("data: "), b...), "\n\n"...)
}

// split cuts text into n pieces on rune boundaries, as evenly as possible; pieces are
// empty only when n exceeds the number of runes.
func split(text string, n int) []string {
	runes := utf8.RuneCountInString(text)
	pieces := make([]string, 0, n)
	start, seen := 0, 0
	for i := range n {
		end := start
		for seen < runes*(i+1)/n {
			_, size := utf8.DecodeRuneInString(text[end:])
			end += size
			seen++
		}
		pieces = append(pieces, text[start:end])
		start = end
	}
	return pieces
}

// words is the simulator's token count: whitespace-separated words in a string, in the
// "text" of a content part, in arrays of those, and one per number in token arrays.
func words(raw json.RawMessage) int {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return len(strings.Fields(s))
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		return 1
	}
	var part struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &part) == nil {
		return len(strings.Fields(part.Text))
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return 0
	}
	n := 0
	for _, e := range list {
		n += words(e)
	}
	return n
}

// embeddingInputs splits an embeddings input into the items OpenAI embeds one by one:
// a string or token array is one item, an array of those is several.
func embeddingInputs(raw json.RawMessage) []json.RawMessage {
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil || len(list) == 0 || list[0][0] != '"' && list[0][0] != '[' {
		return []json.RawMessage{raw}
	}
	return list
}

// vector derives a unit vector from the input bytes, so equal inputs embed equally.
func vector(input []byte, dims int) []float32 {
	h := fnv.New64a()
	h.Write(input)
	state := h.Sum64()
	v := make([]float32, dims)
	var norm float64
	for i := range v {
		// splitmix64
		state += 0x9e3779b97f4a7c15
		z := state
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		f := float64(z>>11)/(1<<53)*2 - 1
		v[i] = float32(f)
		norm += f * f
	}
	norm = math.Sqrt(norm)
	for i := range v {
		v[i] = float32(float64(v[i]) / norm)
	}
	return v
}

func encodeVector(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(b)
}
