package backends

import (
	"strconv"
	"time"

	"github.com/berry-gateway/berry/edge/internal/metrics"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/edge/internal/breaker"
)

// reported holds a backend's cumulative counters at its last observation, so each
// batch carries only what happened since; guarded by Registry.reportMu.
type reported struct {
	requests, errors uint64
	byClass          [numClasses]uint64
}

// Observations returns, per configured backend, what this edge saw since the previous
// call: local estimates, samples, attempts and failures (5xx or no answer), in-flight
// requests and the last probe result. It is called by one reporter at a time.
func (r *Registry) Observations(now time.Time) []*berryv1.BackendObservation {
	r.mu.Lock()
	type sums struct {
		req, errs uint64
		byClass   [numClasses]uint64
	}
	per := make(map[Key]*sums, len(r.states))
	for rt, rs := range r.routes {
		s := per[rt.Key]
		if s == nil {
			s = &sums{}
			per[rt.Key] = s
		}
		for c := range rs.Requests {
			n := rs.Requests[c].Load()
			s.req += n
			s.byClass[c] += n
			if Class(c) == Class5xx || Class(c) == ClassError {
				s.errs += n
			}
		}
	}
	states := make([]*State, 0, len(r.states))
	for _, s := range r.states {
		states = append(states, s)
	}
	r.mu.Unlock()

	r.reportMu.Lock()
	defer r.reportMu.Unlock()
	out := make([]*berryv1.BackendObservation, 0, len(states))
	for _, s := range states {
		sum := per[Key{s.Provider, s.UpstreamModel}]
		o := &berryv1.BackendObservation{
			Provider: s.Provider, UpstreamModel: s.UpstreamModel,
			LatencySeconds: s.Latency.LocalLatency(now),
			TtftSeconds:    s.Latency.LocalFirstToken(now),
			Samples:        s.Latency.TakeSamples(),
			InFlight:       uint32(max(s.InFlight.Load(), 0)),
			ProbeHealthy:   s.ProbeHealthy(),
		}
		if sum != nil {
			// Route counters of a route dropped by a config change vanish with it, so
			// the sum may go down: count from the new base then.
			if sum.req >= s.reported.requests && sum.errs >= s.reported.errors {
				o.Requests = uint32(sum.req - s.reported.requests)
				d := func(c Class) uint32 {
					if sum.byClass[c] < s.reported.byClass[c] {
						return 0
					}
					return uint32(sum.byClass[c] - s.reported.byClass[c])
				}
				o.ClientErrors, o.ServerErrors, o.NoAnswer = d(Class4xx), d(Class5xx), d(ClassError)
			}
			s.reported = reported{requests: sum.req, errors: sum.errs, byClass: sum.byClass}
		}
		out = append(out, o)
	}
	return out
}

// ApplyScores installs the fleet's merged scores, valid for ttl (nil: the control
// plane is gone; local estimates and local probing only). Each backend's latency
// estimate blends them with the local samples; a backend the fleet marks down has its
// local breaker opened, so it leaves rotation here too until the breaker's own
// half-open trial finds it serving again; probe results of providers another edge
// (self is this edge's id) is assigned to probe are taken from that edge. Backends
// absent from the scores fall back to local estimates.
func (r *Registry) ApplyScores(fs *berryv1.FleetScores, self string, now time.Time, ttl time.Duration) {
	byKey := make(map[Key]*berryv1.BackendScore, len(fs.GetBackends()))
	for _, sc := range fs.GetBackends() {
		byKey[Key{sc.GetProvider(), sc.GetUpstreamModel()}] = sc
	}
	r.mu.Lock()
	if fs == nil {
		r.probing = probing{}
	} else {
		r.probing = probing{owners: fs.GetProbeOwners(), self: self, assigned: true}
	}
	states := make([]*State, 0, len(r.states))
	for _, s := range r.states {
		states = append(states, s)
	}
	r.mu.Unlock()
	for _, s := range states {
		sc := byKey[Key{s.Provider, s.UpstreamModel}]
		if sc == nil {
			s.Latency.SetFleet(0, 0, time.Time{})
			s.fleetDown.Store(false)
			continue
		}
		s.Latency.SetFleet(sc.GetLatencySeconds(), sc.GetTtftSeconds(), now.Add(ttl))
		down := sc.GetDown()
		if down && !s.fleetDown.Swap(true) {
			if s.Breaker.State(now) != breaker.Open {
				s.Breaker.Trip(now)
			}
		} else if !down {
			s.fleetDown.Store(false)
		}
		if o := sc.GetProbeOwner(); o != "" && o != self && sc.GetProbed() {
			msg := ""
			if !sc.GetProbeHealthy() {
				msg = "failed the health probe of edge " + strconv.Quote(o)
			}
			s.SetProbe(sc.GetProbeHealthy(), msg)
		}
	}
}

// probing is the coordinated-probing state: without assignments (standalone, or no
// control plane) every provider is probed locally; while connected and not yet
// assigned, none are, until waitUntil passes.
type probing struct {
	owners    map[string]string
	self      string
	assigned  bool
	waitUntil time.Time
}

// AwaitAssignment says the edge is connected and will receive probe assignments; it
// probes nothing until they arrive or until passes (a control plane that never
// sends them).
func (r *Registry) AwaitAssignment(until time.Time) {
	r.mu.Lock()
	r.probing = probing{waitUntil: until}
	r.mu.Unlock()
}

// ProbeAssigned reports whether this edge runs the active probes of provider now.
func (r *Registry) ProbeAssigned(provider string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &r.probing
	switch {
	case p.assigned:
		o, ok := p.owners[provider]
		return !ok || o == p.self // a provider the control plane does not know: probe it
	case now.Before(p.waitUntil):
		return false
	}
	return true
}

// ClearFleet drops every fleet score (the control plane is gone): local estimates only.
func (r *Registry) ClearFleet() { r.ApplyScores(nil, "", time.Time{}, 0) }

// CountMergedBatch counts an observation batch merged into a later one because the
// control-plane stream was slow (for /metrics).
func (r *Registry) CountMergedBatch() { r.mergedBatches.Add(1) }

// FleetDown reports whether the last fleet scores marked the backend down.
func (s *State) FleetDown() bool { return s.fleetDown.Load() }

// WriteFleetMetrics writes each backend's local and fleet latency estimates and the
// fleet's down mark, for the edge's /metrics.
func (r *Registry) WriteFleetMetrics(w *metrics.Writer, now time.Time) {
	states := r.States()
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
	w.Header("berry_fleet_batches_merged_total", "counter", "Observation batches merged into a later one because the control-plane stream was slow.")
	w.Sample("berry_fleet_batches_merged_total", float64(r.mergedBatches.Load()))
	w.Header("berry_backend_fleet_down", "gauge", "1 when the fleet's merged error rate marks the backend down.")
	for _, s := range states {
		v := 0.0
		if s.FleetDown() {
			v = 1
		}
		w.Sample("berry_backend_fleet_down", v, "backend", s.Label)
	}
}
