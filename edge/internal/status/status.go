// Package status serves an edge's operational pages: /health (per-model backend
// availability), /readyz (whether a snapshot is served, and the control-plane
// connection) and /metrics (Prometheus text). They read the runtime's state; they are
// not on the request path, and show config ids and states only, never secrets.
package status

import (
	"bufio"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/routing"
	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/provider"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Runtime is what the pages report on (serving.Runtime).
type Runtime interface {
	Table() *routing.Table
	Backends() *backends.Registry
}

// ControlPlane is the edge's link to the control plane (cpsync.Client).
type ControlPlane interface {
	Connected() bool
	MergedBatches() uint64
	// Stale: the control plane has been away longer than the snapshot may be served.
	Stale() bool
	// Address is the control-plane address the stream is on, "" while not connected.
	Address() string
}

// Connections counts the client connections (connlimit.Listener).
type Connections interface {
	Active() int64
	Refused() uint64
}

// Pages serves the operational endpoints. Runtime is required.
type Pages struct {
	Runtime Runtime
	// Connections, when set, is exported as berry_client_connections and
	// berry_client_connections_refused_total.
	Connections Connections
	// ControlPlane is nil in standalone mode, so /readyz does not report a connection
	// that was never meant to exist.
	ControlPlane ControlPlane
	// MetricsToken, when set, must be sent as "Authorization: Bearer <token>" to read
	// GET /metrics. When empty, /metrics answers loopback clients only.
	MetricsToken string
	// AccessLog, when set, is exported as berry_access_log_dropped_total.
	AccessLog interface{ Dropped() uint64 }
	// Process, when set, adds its metrics (the Go runtime's, the process's, the
	// build's) to /metrics.
	Process prometheus.Gatherer

	draining atomic.Bool
}

// Drain makes /readyz answer 503 from now on, so load balancers stop sending this
// edge new requests while it finishes the ones it has.
func (p *Pages) Drain() { p.draining.Store(true) }

// Health reports per-model backend availability: 200 "ok" when every enabled model
// has an available backend, 200 "degraded" when only some do, 503 when none does or
// there is no configuration. The status is decided first; the body, which grows with
// the config, is then streamed.
func (p *Pages) Health(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	t := p.Runtime.Table()
	if t == nil {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"status":"unavailable","reason":"no configuration yet"}`)
		return
	}
	now := time.Now()
	up, total := 0, 0
	for _, name := range t.ModelNames {
		if m := t.ModelByName(name); m.Enabled {
			total++
			if available(m, now) > 0 {
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
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) { writeHealth(w, t, status, now) })
}

// available counts the model's backends that may take a request at now.
func available(m *routing.Model, now time.Time) int {
	n := 0
	for _, b := range m.Backends {
		if b.Enabled && b.Provider.Enabled && b.State.Available(now) {
			n++
		}
	}
	return n
}

func writeHealth(w *bufio.Writer, t *routing.Table, status string, now time.Time) {
	out := make([]byte, 0, 512)
	out = append(out, `{"config_version":`...)
	out = strconv.AppendUint(out, t.Version, 10)
	out = append(out, `,"models":[`...)
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
		// One model at a time: the page is as large as the config, its buffer is not.
		if _, err := w.Write(out); err != nil {
			return
		}
		out = out[:0]
	}
	out = append(out, `],"status":"`...)
	out = append(out, status...)
	out = append(out, `"}`...)
	_, _ = w.Write(out)
}

// Ready answers 200 with the config version served once there is one, else 503, and
// 503 once the edge drains.
func (p *Pages) Ready(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	if p.draining.Load() {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"status":"not_ready","reason":"draining: the edge is shutting down"}`)
		return
	}
	t := p.Runtime.Table()
	if t == nil {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"status":"not_ready","reason":"no configuration snapshot yet"}`)
		return
	}
	if p.ControlPlane != nil && p.ControlPlane.Stale() {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		out := append(make([]byte, 0, 128), `{"status":"not_ready","reason":"configuration stale: no control plane for longer than --max-snapshot-age","config_version":`...)
		ctx.Response.SetBodyRaw(append(strconv.AppendUint(out, t.Version, 10), '}'))
		return
	}
	out := append(make([]byte, 0, 96), `{"status":"ready","config_version":`...)
	out = strconv.AppendUint(out, t.Version, 10)
	if p.ControlPlane != nil {
		out = append(out, `,"control_plane_connected":`...)
		out = strconv.AppendBool(out, p.ControlPlane.Connected())
		if a := p.ControlPlane.Address(); a != "" {
			out = jsonscan.AppendString(append(out, `,"control_plane":`...), a)
		}
	}
	out = append(out, '}')
	ctx.Response.SetBodyRaw(out)
}

// writeError answers with an OpenAI-style error, as every client-facing error is.
func writeError(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(provider.AppendOpenAIError(nil, provider.OpenAIErrorType(status), code, msg))
}
