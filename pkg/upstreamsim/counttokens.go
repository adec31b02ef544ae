package upstreamsim

import (
	"encoding/json"
	"slices"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// countTokens answers Anthropic's POST /v1/messages/count_tokens with
// {"input_tokens": N}: N is CountTokens of the request's text.
func (s *Server) countTokens(ctx *fasthttp.RequestCtx, o *Options) {
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		System json.RawMessage `json:"system"`
		Tools  []struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			InputSchema json.RawMessage `json:"input_schema"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	switch {
	case req.Model == "":
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, "model: Field required")
		return
	case len(req.Messages) == 0:
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, "messages: Field required")
		return
	}
	s.countModel(req.Model)
	if len(o.Models) > 0 && !slices.Contains(o.Models, req.Model) {
		writeAnthropicError(ctx, fasthttp.StatusNotFound, "model: "+req.Model)
		return
	}
	text := contentText(req.System)
	for _, m := range req.Messages {
		text += contentText(m.Content)
	}
	for _, t := range req.Tools {
		text += t.Name + t.Description + string(t.InputSchema)
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]int{"input_tokens": CountTokens(text)})
}

// CountTokens is the simulator's count_tokens estimate: a token per four characters
// of the system prompt, the messages' text and the tool definitions, at least one.
// (Messages report words as usage instead; the two need not agree.)
func CountTokens(text string) int {
	return max(utf8.RuneCountInString(text)/4, 1)
}
