package proxy

import (
	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

// models lists the models the key may use — every name a client may send for them,
// aliases included — in OpenAI's list shape, or in Anthropic's when the request
// carries anthropic-version, as the Anthropic SDKs send it (they also authenticate
// with x-api-key, and read errors in Anthropic's shape).
func (h *Handler) models(r *request) {
	ctx := r.ctx
	in := inOpenAI
	if len(ctx.Request.Header.Peek("Anthropic-Version")) > 0 {
		in = inMessages
	}
	r.in = in
	if h.opts.Tracer != nil {
		h.startRequest(r)
	}
	if !ctx.IsGet() {
		in.writeError(ctx, fasthttp.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed", "use GET")
		ctx.Response.Header.Set("Allow", "GET")
		return
	}
	if !h.identify(r) {
		return
	}
	t, user := r.table, r.user
	var names []string
	for _, name := range t.ModelNames {
		m := t.ModelByName(name)
		if !m.Enabled || !user.Allowed(m) {
			continue
		}
		names = append(names, m.Name)
		names = append(names, m.Aliases...)
	}
	ctx.SetContentType("application/json")
	if in == inMessages {
		ctx.Response.SetBodyRaw(anthropicModelList(names))
		return
	}
	out := append(make([]byte, 0, 256), `{"object":"list","data":[`...)
	for i, name := range names {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"id":`...)
		out = jsonscan.AppendString(out, name)
		out = append(out, `,"object":"model","created":0,"owned_by":"berry"}`...)
	}
	out = append(out, "]}"...)
	ctx.Response.SetBodyRaw(out)
}

// anthropicModelList is Anthropic's GET /v1/models answer: one page with everything.
func anthropicModelList(names []string) []byte {
	out := append(make([]byte, 0, 256), `{"data":[`...)
	for i, name := range names {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"type":"model","id":`...)
		out = jsonscan.AppendString(out, name)
		out = append(out, `,"display_name":`...)
		out = jsonscan.AppendString(out, name)
		out = append(out, `,"created_at":"1970-01-01T00:00:00Z"}`...)
	}
	out = append(out, `],"has_more":false,"first_id":`...)
	if len(names) == 0 {
		return append(out, `null,"last_id":null}`...)
	}
	out = jsonscan.AppendString(out, names[0])
	out = append(out, `,"last_id":`...)
	out = jsonscan.AppendString(out, names[len(names)-1])
	return append(out, '}')
}
