package proxy

import (
	"encoding/json"
	"strings"
)

// refusalClass recognizes an upstream error answer that says the model cannot serve
// the request as sent, in OpenAI's, Azure's and Anthropic's shapes: too long for its
// context window (OpenAI's and Azure's code context_length_exceeded; Anthropic's
// invalid_request_error "prompt is too long" or "exceed context limit"), or refused
// by a content filter (Azure's code content_filter or its ResponsibleAIPolicyViolation
// inner error; OpenAI's content_policy_violation). classNone for anything else. It
// runs only on error answers of models that name fallbacks.
func refusalClass(body []byte) int {
	var e struct {
		Error struct {
			Code       any    `json:"code"`
			Type       any    `json:"type"`
			Message    string `json:"message"`
			InnerError struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return classNone
	}
	code, _ := e.Error.Code.(string)
	msg := strings.ToLower(e.Error.Message)
	switch {
	case code == "context_length_exceeded", code == "string_above_max_length",
		strings.Contains(msg, "prompt is too long"), strings.Contains(msg, "exceed context limit"),
		strings.Contains(msg, "maximum context length"):
		return classContextWindow
	case code == "content_filter", code == "content_policy_violation",
		e.Error.InnerError.Code == "ResponsibleAIPolicyViolation":
		return classContentFilter
	}
	return classNone
}
