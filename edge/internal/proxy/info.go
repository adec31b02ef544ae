package proxy

import (
	"bytes"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/breaker"
	"github.com/berry-gateway/berry/edge/internal/metrics"
	"github.com/berry-gateway/berry/pkg/jsonscan"
)

func (h *Handler) models(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		writeError(ctx, fasthttp.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed", "use GET")
		ctx.Response.Header.Set("Allow", "GET")
		return
	}
	t := h.table(ctx)
	if t == nil {
		return
	}
	user := authenticate(ctx, t, time.Now(), inOpenAI)
	if user == nil {
		return
	}
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

// health reports per-model backend availability: 200 "ok" when every enabled model
// has an available backend, 200 "degraded" when only some do, 503 when none does or
// there is no configuration. It shows ids and states only, never secrets.
func (h *Handler) health(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	t := h.tables.Table()
	if t == nil {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"status":"unavailable","reason":"no configuration yet"}`)
		return
	}
	h.Bind(t)
	now := time.Now()
	out := make([]byte, 0, 512)
	out = append(out, `{"config_version":`...)
	out = strconv.AppendUint(out, t.Version, 10)
	out = append(out, `,"models":[`...)
	up, total := 0, 0
	for i, name := range t.ModelNames {
		m := t.ModelByName(name)
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"model":`...)
		out = jsonscan.AppendString(out, m.Name)
		out = append(out, `,"enabled":`...)
		out = strconv.AppendBool(out, m.Enabled)
		out = append(out, `,"backends":[`...)
		avail := 0
		for j, b := range m.Backends {
			if j > 0 {
				out = append(out, ',')
			}
			s := b.State
			ok := b.Enabled && b.Provider.Enabled && s.Available(now)
			if ok {
				avail++
			}
			out = append(out, `{"provider":`...)
			out = jsonscan.AppendString(out, b.Provider.ID)
			out = append(out, `,"model":`...)
			out = jsonscan.AppendString(out, b.UpstreamModel)
			out = append(out, `,"enabled":`...)
			out = strconv.AppendBool(out, b.Enabled && b.Provider.Enabled)
			out = append(out, `,"available":`...)
			out = strconv.AppendBool(out, ok)
			out = append(out, `,"breaker":"`...)
			out = append(out, s.Breaker.State(now).String()...)
			out = append(out, `","probe_healthy":`...)
			out = strconv.AppendBool(out, s.ProbeHealthy())
			if e := s.ProbeError(); e != "" {
				out = append(out, `,"probe_error":`...)
				out = jsonscan.AppendString(out, e)
			}
			out = append(out, `,"in_flight":`...)
			out = strconv.AppendInt(out, int64(s.InFlight.Load()), 10)
			out = append(out, '}')
		}
		out = append(out, `],"available":`...)
		out = strconv.AppendBool(out, avail > 0)
		out = append(out, '}')
		if m.Enabled {
			total++
			if avail > 0 {
				up++
			}
		}
	}
	status := "ok"
	switch {
	case total > 0 && up == 0:
		status = "unavailable"
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	case up < total:
		status = "degraded"
	}
	out = append(out, `],"status":"`...)
	out = append(out, status...)
	out = append(out, `"}`...)
	ctx.Response.SetBodyRaw(out)
}

// connected is implemented by table sources that know whether the control plane is
// reachable (tables.Current).
type connected interface{ Connected() bool }

func (h *Handler) readyz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	t := h.tables.Table()
	if t == nil {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"status":"not_ready","reason":"no configuration snapshot yet"}`)
		return
	}
	out := append(make([]byte, 0, 96), `{"status":"ready","config_version":`...)
	out = strconv.AppendUint(out, t.Version, 10)
	if c, ok := h.tables.(connected); ok {
		out = append(out, `,"control_plane_connected":`...)
		out = strconv.AppendBool(out, c.Connected())
	}
	out = append(out, '}')
	ctx.Response.SetBodyRaw(out)
}

func (h *Handler) metricsAllowed(ctx *fasthttp.RequestCtx) bool {
	if h.opts.MetricsToken == "" {
		return ctx.RemoteIP().IsLoopback()
	}
	auth := ctx.Request.Header.Peek("Authorization")
	const prefix = "Bearer "
	return len(auth) > len(prefix) && bytes.EqualFold(auth[:len(prefix)], []byte(prefix)) &&
		constantTimeEqual(bytes.TrimSpace(auth[len(prefix):]), []byte(h.opts.MetricsToken))
}

// metrics writes the Prometheus text exposition. Labels are config ids only (model
// ids, provider ids, upstream model names), never client input.
func (h *Handler) metrics(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		writeError(ctx, fasthttp.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed", "use GET")
		ctx.Response.Header.Set("Allow", "GET")
		return
	}
	if !h.metricsAllowed(ctx) {
		writeError(ctx, fasthttp.StatusUnauthorized, typeAuth, "invalid_metrics_token",
			"metrics need the edge's metrics token (Authorization: Bearer <token>)")
		return
	}
	t := h.tables.Table()
	if t != nil {
		h.Bind(t)
	}
	now := time.Now()
	w := metrics.Writer{B: make([]byte, 0, 8<<10)}
	w.Header("berry_config_version", "gauge", "Version of the config snapshot being served (0 before the first).")
	v := 0.0
	if t != nil {
		v = float64(t.Version)
	}
	w.Sample("berry_config_version", v)
	w.Header("berry_in_flight_requests", "gauge", "Upstream attempts in flight on this edge.")
	w.Sample("berry_in_flight_requests", float64(h.inFlight.Load()))

	models := h.states.Models()
	w.Header("berry_requests_total", "counter", "Client requests by model and response status class.")
	for _, m := range models {
		for c := range m.Requests {
			w.Sample("berry_requests_total", float64(m.Requests[c].Load()), "model", m.ID, "class", backends.Class(c).String())
		}
	}
	w.Header("berry_retries_total", "counter", "Upstream attempts after the first, by model.")
	for _, m := range models {
		w.Sample("berry_retries_total", float64(m.Retries.Load()), "model", m.ID)
	}
	w.Header("berry_failovers_total", "counter", "Requests answered by a backend other than the first one tried, by model.")
	for _, m := range models {
		w.Sample("berry_failovers_total", float64(m.Failovers.Load()), "model", m.ID)
	}
	w.Header("berry_rate_limited_total", "counter", "Requests rejected by an API key's rate limit, by model.")
	for _, m := range models {
		w.Sample("berry_rate_limited_total", float64(m.Limited.Load()), "model", m.ID)
	}

	w.Header("berry_upstream_requests_total", "counter", "Upstream attempts by model, backend and outcome class.")
	for _, rs := range h.states.Routes() {
		for c := range rs.Requests {
			w.Sample("berry_upstream_requests_total", float64(rs.Requests[c].Load()),
				"model", rs.Model, "backend", rs.Backend, "class", backends.Class(c).String())
		}
	}
	states := h.states.States()
	w.Header("berry_upstream_in_flight", "gauge", "Upstream attempts in flight by backend.")
	for _, s := range states {
		w.Sample("berry_upstream_in_flight", float64(s.InFlight.Load()), "backend", s.Label)
	}
	w.Header("berry_breaker_state", "gauge", "Circuit breaker state by backend: 0 closed, 1 open, 2 half-open.")
	for _, s := range states {
		st := s.Breaker.State(now)
		val := 0.0
		switch st {
		case breaker.Open:
			val = 1
		case breaker.HalfOpen:
			val = 2
		}
		w.Sample("berry_breaker_state", val, "backend", s.Label)
	}
	w.Header("berry_backend_probe_healthy", "gauge", "Last active health probe result by backend (1 healthy).")
	for _, s := range states {
		val := 0.0
		if s.ProbeHealthy() {
			val = 1
		}
		w.Sample("berry_backend_probe_healthy", val, "backend", s.Label)
	}
	w.Header("berry_upstream_latency_seconds", "histogram", "Upstream attempt duration by backend (whole response).")
	for _, s := range states {
		w.Histogram("berry_upstream_latency_seconds", &s.Duration, "backend", s.Label)
	}
	w.Header("berry_upstream_ttft_seconds", "histogram", "Time to first content of streamed answers by backend.")
	for _, s := range states {
		w.Histogram("berry_upstream_ttft_seconds", &s.FirstToken, "backend", s.Label)
	}
	h.states.WriteFleetMetrics(&w, now)
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	ctx.Response.SetBodyRaw(w.B)
}
