package upstreamsim

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"
)

// Azure OpenAI dialect: paths under /openai/, the api-key header, an api-version query
// parameter, deployments instead of models, Azure's error shape (a "code" and no
// "type") and content-filter annotations. Options.Models, when set, are the
// deployments that exist.
//
//	POST /openai/deployments/{deployment}/chat/completions?api-version=…
//	POST /openai/deployments/{deployment}/completions?api-version=…
//	POST /openai/deployments/{deployment}/embeddings?api-version=…
//	GET  /openai/deployments?api-version=…   (the deployments listing)
//	GET  /openai/models?api-version=…        (base models)
//	POST /openai/v1/responses                (the Responses API, see responses.go; also
//	     /openai/v1/responses/{id}…           GET, DELETE, /cancel and /input_items, with
//	     /openai/responses?api-version=…      or without v1/, api-version required without)
//
// On the Responses routes the body's model is the deployment.
//
// The X-Sim-Content-Filter request header triggers Azure's content filter: "prompt"
// answers 400 with code content_filter and the filter results in innererror;
// "completion" answers 200 with finish_reason content_filter and no content.

type azureCall struct {
	deployment       string
	filterCompletion bool
}

// AzureURL returns the simulator's Azure resource endpoint (the base_url of an azure
// provider).
func (s *Server) AzureURL() string { return "http://" + s.Addr() }

var safeFilter = map[string]any{
	"hate":      map[string]any{"filtered": false, "severity": "safe"},
	"self_harm": map[string]any{"filtered": false, "severity": "safe"},
	"sexual":    map[string]any{"filtered": false, "severity": "safe"},
	"violence":  map[string]any{"filtered": false, "severity": "safe"},
}

var hateFilter = map[string]any{
	"hate":      map[string]any{"filtered": true, "severity": "high"},
	"self_harm": map[string]any{"filtered": false, "severity": "safe"},
	"sexual":    map[string]any{"filtered": false, "severity": "safe"},
	"violence":  map[string]any{"filtered": false, "severity": "safe"},
}

// decorate adds Azure's content-filter results to a chat completion or chunk; a nil
// call leaves it as OpenAI's.
func (az *azureCall) decorate(c chatCompletion, withPrompt bool) any {
	if az == nil {
		return c
	}
	b, _ := json.Marshal(c)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	results := safeFilter
	if az.filterCompletion {
		results = hateFilter
	}
	for _, ch := range m["choices"].([]any) {
		ch.(map[string]any)["content_filter_results"] = results
	}
	if withPrompt {
		m["prompt_filter_results"] = []any{map[string]any{"prompt_index": 0, "content_filter_results": safeFilter}}
	}
	return m
}

// promptFilterChunk is the first chunk of an Azure stream: no choices, only the
// prompt's filter results.
func (az *azureCall) promptFilterChunk() any {
	return map[string]any{
		"choices": []any{}, "created": 0, "id": "", "model": "", "object": "",
		"prompt_filter_results": []any{map[string]any{"prompt_index": 0, "content_filter_results": safeFilter}},
	}
}

func (s *Server) handleAzure(ctx *fasthttp.RequestCtx, path string) {
	rest := strings.TrimPrefix(path, "/openai/")
	deployment, op, isCall := "", "", false
	if d, ok := strings.CutPrefix(rest, "deployments/"); ok {
		deployment, op, isCall = strings.Cut(d, "/")
	}
	v1 := strings.HasPrefix(rest, "v1/")
	respSub, isResponses := responsesRoute("/" + strings.TrimPrefix(rest, "v1/"))
	switch {
	case isCall && op == "chat/completions" && ctx.IsPost():
		s.record(ctx, kindChat)
	case isResponses && respSub == "" && ctx.IsPost():
		s.record(ctx, kindResponses)
	default:
		s.record(ctx, kindOther)
	}

	o, err := requestOptions(*s.opts.Load(), &ctx.Request.Header)
	ctx.Response.Header.Set("X-Sim-Name", o.Name)
	if isResponses {
		ctx.Response.Header.Set("X-Request-Id", "req_"+s.newID())
	}
	if err != nil {
		writeAzureError(ctx, fasthttp.StatusBadRequest, "BadRequest", err.Error(), nil)
		return
	}
	if !pause(o.Latency, s.done) {
		writeAzureError(ctx, fasthttp.StatusServiceUnavailable, "ServiceUnavailable", "simulator is shutting down", nil)
		return
	}
	if o.APIKey != "" && string(ctx.Request.Header.Peek("api-key")) != o.APIKey {
		writeAzureError(ctx, fasthttp.StatusUnauthorized, "401", "Access denied due to invalid subscription key or "+
			"wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct "+
			"regional API endpoint for your resource.", nil)
		return
	}
	// The v1 API (GA) takes no api-version.
	if len(ctx.QueryArgs().Peek("api-version")) == 0 && !v1 {
		writeAzureError(ctx, fasthttp.StatusNotFound, "404", "Resource not found", nil)
		return
	}
	if isResponses {
		s.responsesAPI(ctx, &o, respSub, true)
		return
	}
	method := fasthttp.MethodPost
	var endpoint func(*fasthttp.RequestCtx, *Options)
	switch {
	case rest == "deployments":
		method, endpoint = fasthttp.MethodGet, s.azureDeployments
	case rest == "models":
		method, endpoint = fasthttp.MethodGet, s.models
	case isCall && deployment != "" && (op == "chat/completions" || op == "completions" || op == "embeddings"):
	default:
		writeAzureError(ctx, fasthttp.StatusNotFound, "404", "Resource not found", nil)
		return
	}
	if string(ctx.Method()) != method {
		writeAzureError(ctx, fasthttp.StatusMethodNotAllowed, "405", "Method not allowed", nil)
		return
	}
	if o.FailStatus != 0 {
		writeAzureFailure(ctx, &o)
		return
	}
	if endpoint != nil {
		endpoint(ctx, &o)
		return
	}
	if len(o.Models) > 0 && !slices.Contains(o.Models, deployment) {
		writeAzureError(ctx, fasthttp.StatusNotFound, "DeploymentNotFound", "The API deployment for this "+
			"resource does not exist. If you created the deployment within the last 5 minutes, please wait a "+
			"moment and try again.", nil)
		return
	}
	// Azure takes the model from the deployment; the body's model is ignored.
	var body map[string]json.RawMessage
	if json.Unmarshal(ctx.PostBody(), &body) == nil && body != nil {
		body["model"], _ = json.Marshal(deployment)
		b, _ := json.Marshal(body)
		ctx.Request.SetBodyRaw(b)
	}
	az := &azureCall{deployment: deployment}
	switch string(ctx.Request.Header.Peek("X-Sim-Content-Filter")) {
	case "prompt":
		writeContentFilter(ctx)
		return
	case "completion":
		az.filterCompletion = true
	}
	switch op {
	case "chat/completions":
		s.chatAs(ctx, &o, az)
	case "completions":
		s.completion(ctx, &o)
	case "embeddings":
		s.embeddings(ctx, &o)
	}
}

func (s *Server) azureDeployments(ctx *fasthttp.RequestCtx, o *Options) {
	ids := o.Models
	if len(ids) == 0 {
		ids = []string{DefaultModel}
	}
	data := make([]map[string]any, len(ids))
	for i, id := range ids {
		data[i] = map[string]any{
			"id": id, "model": id, "owner": "organization-owner", "object": "deployment",
			"status": "succeeded", "created_at": modelsCreated, "updated_at": modelsCreated,
			"scale_settings": map[string]any{"scale_type": "standard"},
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"object": "list", "data": data})
}

// writeAzureError writes Azure's error shape: {"error":{"code","message",…}}.
func writeAzureError(ctx *fasthttp.RequestCtx, status int, code, msg string, extra map[string]any) {
	e := map[string]any{"code": code, "message": msg}
	for k, v := range extra {
		e[k] = v
	}
	writeJSON(ctx, status, map[string]any{"error": e})
}
