package proxy

import (
	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

// models lists the models the key may use, in OpenAI's list shape.
func (h *Handler) models(r *request) {
	ctx := r.ctx
	if h.opts.Tracer != nil {
		h.startRequest(r)
	}
	if !ctx.IsGet() {
		inOpenAI.writeError(ctx, fasthttp.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed", "use GET")
		ctx.Response.Header.Set("Allow", "GET")
		return
	}
	t := h.table(ctx, inOpenAI)
	if t == nil {
		return
	}
	user := authenticate(ctx, t, r.rec.Time, inOpenAI)
	if user == nil {
		return
	}
	r.rec.Key = user.ID
	out := append(make([]byte, 0, 256), `{"object":"list","data":[`...)
	n := 0
	for _, name := range t.ModelNames {
		m := t.ModelByName(name)
		if !m.Enabled || !user.Allowed(m) {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, `{"id":`...)
		out = jsonscan.AppendString(out, m.Name)
		out = append(out, `,"object":"model","created":0,"owned_by":"berry"}`...)
	}
	out = append(out, "]}"...)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(out)
}
