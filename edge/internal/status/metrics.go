package status

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"slices"
	"time"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/breaker"
	"github.com/berry-gateway/berry/edge/internal/metrics"
	"github.com/berry-gateway/berry/edge/internal/routing"
	"github.com/prometheus/common/expfmt"
	"github.com/valyala/fasthttp"
)

func (p *Pages) metricsAllowed(ctx *fasthttp.RequestCtx) bool {
	if p.MetricsToken == "" {
		return ctx.RemoteIP().IsLoopback()
	}
	auth := ctx.Request.Header.Peek("Authorization")
	const prefix = "Bearer "
	return len(auth) > len(prefix) && bytes.EqualFold(auth[:len(prefix)], []byte(prefix)) &&
		subtle.ConstantTimeCompare(bytes.TrimSpace(auth[len(prefix):]), []byte(p.MetricsToken)) == 1
}

// Metrics writes the Prometheus text exposition, streamed: its size grows with the
// config, its memory does not. Labels are config ids only (model ids, provider ids,
// upstream model names), never client input. A model, route or backend has series
// once it has been used (or, for a backend, once it has state to show: a probe
// result, an open breaker, a fleet score), so an edge with thousands of configured
// models exposes what it serves, not what it could.
func (p *Pages) Metrics(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		ctx.Response.Header.Set("Allow", "GET")
		return
	}
	if !p.metricsAllowed(ctx) {
		writeError(ctx, fasthttp.StatusUnauthorized, "invalid_metrics_token",
			"metrics need the edge's metrics token (Authorization: Bearer <token>)")
		return
	}
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	t, reg := p.Runtime.Table(), p.Runtime.Backends()
	ctx.SetBodyStreamWriter(func(bw *bufio.Writer) { p.writeMetrics(&metrics.Writer{W: bw}, t, reg) })
}

func (p *Pages) writeMetrics(w *metrics.Writer, t *routing.Table, reg *backends.Registry) {
	now := time.Now()
	states := reg.States()
	w.Header("berry_config_version", "gauge", "Version of the config snapshot being served (0 before the first).")
	v := 0.0
	if t != nil {
		v = float64(t.Version)
	}
	w.Sample("berry_config_version", v)
	if p.ControlPlane != nil {
		w.Header("berry_control_plane_connected", "gauge", "1 while the control-plane stream is up, labelled with the address it is on; 0 (address \"\") while not.")
		up := 0.0
		if p.ControlPlane.Connected() {
			up = 1
		}
		w.Sample("berry_control_plane_connected", up, "address", p.ControlPlane.Address())
	}
	var inFlight int64
	for _, s := range states {
		inFlight += int64(s.InFlight.Load())
	}
	w.Header("berry_in_flight_requests", "gauge", "Upstream attempts in flight on this edge.")
	w.Sample("berry_in_flight_requests", float64(inFlight))
	if c := p.Connections; c != nil {
		w.Header("berry_client_connections", "gauge", "Client connections open now.")
		w.Sample("berry_client_connections", float64(c.Active()))
		w.Header("berry_client_connections_refused_total", "counter", "Client connections refused because --max-conns were open.")
		w.Sample("berry_client_connections_refused_total", float64(c.Refused()))
	}

	models := slices.DeleteFunc(reg.Models(), func(m *backends.ModelStats) bool { return !m.Used() })
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
	w.Header("berry_rate_limited_total", "counter", "Requests rejected by an API key's request or token limits, by model.")
	for _, m := range models {
		n := m.QuotaRejected[backends.QuotaRequests].Load() + m.QuotaRejected[backends.QuotaTokens].Load()
		w.Sample("berry_rate_limited_total", float64(n), "model", m.ID)
	}
	w.Header("berry_quota_rejections_total", "counter", "Requests rejected by an API key's fleet limits, by model and reason (requests, tokens, budget).")
	for _, m := range models {
		for q := range m.QuotaRejected {
			w.Sample("berry_quota_rejections_total", float64(m.QuotaRejected[q].Load()), "model", m.ID, "reason", backends.QuotaReason(q).String())
		}
	}

	w.Header("berry_upstream_requests_total", "counter", "Upstream attempts by model, backend and outcome class.")
	for _, rs := range reg.Routes() {
		if !rs.Used() {
			continue
		}
		for c := range rs.Requests {
			w.Sample("berry_upstream_requests_total", float64(rs.Requests[c].Load()),
				"model", rs.Model, "backend", rs.Backend, "class", backends.Class(c).String())
		}
	}
	w.Header("berry_tokens_total", "counter", "Tokens of the answers served, by model, backend and type (input, output, cached, reasoning).")
	for _, rs := range reg.Routes() {
		if !rs.Used() {
			continue
		}
		for k := range rs.Tokens {
			w.Sample("berry_tokens_total", float64(rs.Tokens[k].Load()), "model", rs.Model, "backend", rs.Backend, "type", backends.TokenType(k).String())
		}
	}
	w.Header("berry_cost_usd_total", "counter", "Cost of the answers served at their backends' prices, by model and backend.")
	for _, rs := range reg.Routes() {
		if rs.Used() {
			w.Sample("berry_cost_usd_total", float64(rs.CostMicroUSD.Load())/1e6, "model", rs.Model, "backend", rs.Backend)
		}
	}
	states = slices.DeleteFunc(states, func(s *backends.State) bool { return !s.Used(now) })
	w.Header("berry_upstream_in_flight", "gauge", "Upstream attempts in flight by backend.")
	for _, s := range states {
		w.Sample("berry_upstream_in_flight", float64(s.InFlight.Load()), "backend", s.Label)
	}
	w.Header("berry_breaker_state", "gauge", "Circuit breaker state by backend: 0 closed, 1 open, 2 half-open.")
	for _, s := range states {
		val := 0.0
		switch s.Breaker.State(now) {
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
	p.writeFleet(w, states, now)
	if p.AccessLog != nil {
		w.Header("berry_access_log_dropped_total", "counter", "Access-log lines dropped because the log's writer fell behind.")
		w.Sample("berry_access_log_dropped_total", float64(p.AccessLog.Dropped()))
	}
	if p.Process != nil {
		// Scraped rarely and small: the client library's own exposition is fine here.
		// What could be gathered is written, as the library's own handler does.
		mfs, _ := p.Process.Gather()
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(w.W, mf); err != nil {
				return
			}
		}
	}
}

// writeFleet writes each backend's local, fleet and blended estimates and the fleet's
// down mark.
func (p *Pages) writeFleet(w *metrics.Writer, states []*backends.State, now time.Time) {
	w.Header("berry_backend_latency_seconds", "gauge", "Latency estimate by backend and source (local: this edge's samples; fleet: the control plane's merged score; blended: what routing uses). 0: none.")
	for _, s := range states {
		w.Sample("berry_backend_latency_seconds", s.Latency.LocalLatency(now), "backend", s.Label, "source", "local")
		w.Sample("berry_backend_latency_seconds", s.Latency.FleetLatency(now), "backend", s.Label, "source", "fleet")
		w.Sample("berry_backend_latency_seconds", s.Latency.Latency(now), "backend", s.Label, "source", "blended")
	}
	w.Header("berry_backend_ttft_seconds", "gauge", "Time-to-first-token estimate by backend and source, as berry_backend_latency_seconds.")
	for _, s := range states {
		w.Sample("berry_backend_ttft_seconds", s.Latency.LocalFirstToken(now), "backend", s.Label, "source", "local")
		w.Sample("berry_backend_ttft_seconds", s.Latency.FleetFirstToken(now), "backend", s.Label, "source", "fleet")
		w.Sample("berry_backend_ttft_seconds", s.Latency.FirstToken(now), "backend", s.Label, "source", "blended")
	}
	var merged uint64
	if p.ControlPlane != nil {
		merged = p.ControlPlane.MergedBatches()
	}
	w.Header("berry_fleet_batches_merged_total", "counter", "Observation batches merged into a later one because the control-plane stream was slow.")
	w.Sample("berry_fleet_batches_merged_total", float64(merged))
	w.Header("berry_backend_fleet_down", "gauge", "1 when the fleet's merged error rate marks the backend down.")
	for _, s := range states {
		v := 0.0
		if s.FleetDown() {
			v = 1
		}
		w.Sample("berry_backend_fleet_down", v, "backend", s.Label)
	}
}
