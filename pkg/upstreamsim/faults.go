package upstreamsim

import (
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// Error classes for Options.FailCode: the bodies providers send for errors that
// gateways treat differently from a plain 400, such as falling back to a model with a
// longer context after context_length_exceeded.

const (
	// FailCodeContextLength makes a 400 failure a context-length error.
	FailCodeContextLength = "context_length_exceeded"
	// FailCodeContentFilter makes a 400 failure Azure's content-filter error.
	FailCodeContentFilter = "content_filter"
)

// writeErrorClass writes the OpenAI-format body of the error class o.FailCode names,
// when o.FailStatus is 400 and the class is one it knows, and reports whether it did.
func writeErrorClass(ctx *fasthttp.RequestCtx, o *Options) bool {
	if o.FailStatus != fasthttp.StatusBadRequest {
		return false
	}
	switch o.FailCode {
	case FailCodeContextLength:
		param, msg := "messages", "This model's maximum context length is 8192 tokens. However, your messages "+
			"resulted in 9000 tokens. Please reduce the length of the messages."
		path := string(ctx.Path())
		switch {
		case strings.HasSuffix(path, "/chat/completions"):
		case strings.HasSuffix(path, "/completions"):
			param = "prompt"
		case strings.HasSuffix(path, "/embeddings"):
			param = "input"
		case strings.Contains(path, "/responses"):
			param, msg = "input", "Your input exceeds the context window of this model. Please adjust your input and try again."
		}
		writeParamError(ctx, fasthttp.StatusBadRequest, msg, param, FailCodeContextLength)
	case FailCodeContentFilter:
		writeContentFilter(ctx)
	default:
		return false
	}
	return true
}

// writeContentFilter writes Azure's answer to a prompt its content filter blocked.
func writeContentFilter(ctx *fasthttp.RequestCtx) {
	writeAzureError(ctx, fasthttp.StatusBadRequest, FailCodeContentFilter, "The response was filtered due to the "+
		"prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. "+
		"To learn more about our content filtering policies please read our documentation: "+
		"https://go.microsoft.com/fwlink/?linkid=2198766", map[string]any{
		"param": "prompt", "status": 400, "type": nil,
		"innererror": map[string]any{"code": "ResponsibleAIPolicyViolation", "content_filter_result": hateFilter},
	})
}

// writeAzureFailure answers an injected failure on an Azure route: Azure's error shape,
// with the code Azure uses for the status unless Options.FailCode names another.
func writeAzureFailure(ctx *fasthttp.RequestCtx, o *Options) {
	if writeErrorClass(ctx, o) {
		return
	}
	code := strconv.Itoa(o.FailStatus)
	if o.FailStatus >= 500 {
		code = "InternalServerError"
	}
	if o.FailCode != "" {
		code = o.FailCode
	}
	writeAzureError(ctx, o.FailStatus, code, "simulated "+strconv.Itoa(o.FailStatus)+" from "+o.Name, nil)
}
