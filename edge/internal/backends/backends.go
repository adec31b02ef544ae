// Package backends keeps the runtime state of each upstream backend — circuit breaker,
// latency estimate, requests in flight, active-probe health, Retry-After hold, fleet
// scores and counters — outside the immutable routing table, in a registry keyed by
// config.BackendKey. A new config version that leaves a backend unchanged therefore
// keeps its state (an open breaker stays open); backends no longer configured are
// pruned. What this edge observed goes out as Observations (observe.go), what the fleet
// measured comes in as Scores (scores.go).
package backends

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berry-gateway/berry/edge/internal/breaker"
	"github.com/berry-gateway/berry/edge/internal/latency"
	"github.com/berry-gateway/berry/edge/internal/metrics"
	"github.com/berry-gateway/berry/pkg/config"
)

// Class is the outcome class of an upstream attempt or a client response.
type Class uint8

// Classes, in exposition order.
const (
	Class2xx Class = iota
	Class4xx
	Class5xx
	ClassError // no HTTP answer: connect error, timeout, broken stream
	// ClassTooLong is an attempt that ran past its timeout while the backend answered
	// other requests: the request's doing (a large max_tokens), not the backend's.
	ClassTooLong
	// NumClasses is the number of classes, for arrays indexed by Class.
	NumClasses
)

var classNames = [NumClasses]string{"2xx", "4xx", "5xx", "error", "too_long"}

func (c Class) String() string { return classNames[c] }

// ClassOf maps an HTTP status to its class.
func ClassOf(status int) Class {
	switch {
	case status >= 500:
		return Class5xx
	case status >= 400:
		return Class4xx
	case status > 0:
		return Class2xx
	}
	return ClassError
}

// State is one backend's runtime state; its methods are safe for concurrent use.
type State struct {
	Key config.BackendKey
	// Label is Key.String(), the backend's metric label, kept to not build it per
	// scrape.
	Label string

	Breaker  breaker.Breaker
	Latency  latency.Estimator
	InFlight atomic.Int32

	probeDown atomic.Bool
	probed    atomic.Bool  // a probe result was recorded
	holdUntil atomic.Int64 // unix nanoseconds; 0 for none
	served    atomic.Int64 // unix nanoseconds of the last answer that counted as served

	Duration     metrics.Histogram
	FirstToken   metrics.Histogram
	lastProbeErr atomic.Pointer[string]

	fleetDown atomic.Bool
	// remoteProbe is the failure another edge's probe reported while that edge
	// probes this backend's provider; nil while it reports the provider healthy.
	remoteProbe atomic.Pointer[string]
	reported    reported
}

// Available reports whether the backend may be chosen now: its active probe has not
// failed, no Retry-After hold is running and its breaker lets requests through.
func (s *State) Available(now time.Time) bool {
	return !s.probeDown.Load() && now.UnixNano() >= s.holdUntil.Load() && s.Breaker.Available(now)
}

// AvailableAt returns when the backend may next be available, for a Retry-After
// answer; the zero time means unknown (a failed probe).
func (s *State) AvailableAt(now time.Time, breakerTimeout time.Duration) time.Time {
	if s.probeDown.Load() {
		return time.Time{}
	}
	t := now
	if h := s.holdUntil.Load(); h > now.UnixNano() {
		t = time.Unix(0, h)
	}
	if s.Breaker.State(now) == breaker.Open {
		if o := now.Add(breakerTimeout); o.After(t) {
			t = o // an upper bound: the breaker opened at most a timeout ago
		}
	}
	return t
}

// Served records that the backend answered a request at now.
func (s *State) Served(now time.Time) {
	for {
		old := s.served.Load()
		if now.UnixNano() <= old || s.served.CompareAndSwap(old, now.UnixNano()) {
			return
		}
	}
}

// ServedSince reports whether the backend answered a request after t.
func (s *State) ServedSince(t time.Time) bool { return s.served.Load() > t.UnixNano() }

// Hold keeps the backend out of rotation until t (an upstream's Retry-After).
func (s *State) Hold(t time.Time) {
	for {
		old := s.holdUntil.Load()
		if t.UnixNano() <= old || s.holdUntil.CompareAndSwap(old, t.UnixNano()) {
			return
		}
	}
}

// SetProbe records an active probe's result; errMsg is kept for /health (it must not
// contain secrets: callers pass the status or a network error).
func (s *State) SetProbe(healthy bool, errMsg string) {
	s.probed.Store(true)
	s.probeDown.Store(!healthy)
	if healthy {
		s.lastProbeErr.Store(nil)
	} else {
		s.lastProbeErr.Store(&errMsg)
	}
}

// ProbeHealthy reports the last active probe's verdict (true when never probed).
func (s *State) ProbeHealthy() bool { return !s.probeDown.Load() }

// ProbeError returns the last failed probe's reason, this edge's or, while another
// edge probes the provider, that edge's; "" when healthy.
func (s *State) ProbeError() string {
	if p := s.lastProbeErr.Load(); p != nil {
		return *p
	}
	if p := s.remoteProbe.Load(); p != nil {
		return *p
	}
	return ""
}

// Used reports whether the backend has anything to show at now: attempts or a probe,
// requests in flight, an estimate, a fleet score, a breaker that is not closed.
func (s *State) Used(now time.Time) bool {
	return s.Duration.Count() > 0 || s.InFlight.Load() != 0 || s.probed.Load() || s.FleetDown() ||
		s.remoteProbe.Load() != nil || s.Breaker.State(now) != breaker.Closed ||
		s.Latency.Latency(now) > 0 || s.Latency.FirstToken(now) > 0
}

// ModelStats are a client-facing model's counters.
type ModelStats struct {
	ID        string
	Requests  [NumClasses]atomic.Uint64
	Retries   atomic.Uint64 // attempts after the first
	Failovers atomic.Uint64 // requests served by a backend other than the first tried
	// QuotaRejected counts requests refused by a key's fleet limits, by reason.
	QuotaRejected [NumQuotaReasons]atomic.Uint64
}

// QuotaReason is why a key's request was refused: which kind of limit.
type QuotaReason uint8

// Quota reasons, as berry_quota_rejections_total labels them.
const (
	QuotaRequests QuotaReason = iota // a requests-per-window limit
	QuotaTokens                      // a tokens-per-window limit
	QuotaBudget                      // a budget
	NumQuotaReasons
)

func (q QuotaReason) String() string {
	return [...]string{"requests", "tokens", "budget"}[q]
}

// Used reports whether the model has had a request.
func (m *ModelStats) Used() bool {
	for i := range m.QuotaRejected {
		if m.QuotaRejected[i].Load() > 0 {
			return true
		}
	}
	return sum(&m.Requests) > 0
}

// Route is one backend as used by one model: a backend shared by two models has one
// State but two Routes, so attempts can be counted per model and backend.
type Route struct {
	Model string // model id
	Key   config.BackendKey
}

// RouteStats count one route's upstream attempts by outcome class.
type RouteStats struct {
	Model, Backend string // model id; backend label
	Requests       [NumClasses]atomic.Uint64
	// Tokens of the answers served, by TokenType; CostMicroUSD their cost at the
	// backend's prices.
	Tokens       [NumTokenTypes]atomic.Uint64
	CostMicroUSD atomic.Uint64
}

// TokenType is a kind of token a request's usage counts.
type TokenType uint8

// Token types, as berry_tokens_total labels them: input (cached included), output
// (reasoning included), and the cached and reasoning parts.
const (
	TokensInput TokenType = iota
	TokensOutput
	TokensCached
	TokensReasoning
	NumTokenTypes
)

func (t TokenType) String() string {
	return [...]string{"input", "output", "cached", "reasoning"}[t]
}

// Used reports whether the route has had an attempt.
func (rs *RouteStats) Used() bool { return sum(&rs.Requests) > 0 }

func sum(counts *[NumClasses]atomic.Uint64) uint64 {
	var n uint64
	for i := range counts {
		n += counts[i].Load()
	}
	return n
}

// Registry holds the states; the zero value is ready.
type Registry struct {
	reportMu sync.Mutex // one observation batch at a time

	mu     sync.Mutex
	states map[config.BackendKey]*State
	routes map[Route]*RouteStats
	models map[string]*ModelStats
}

// Synced is what Sync returns, aligned with its inputs.
type Synced struct {
	States []*State      // per route: the route's backend state
	Routes []*RouteStats // per route
	Models []*ModelStats // per model id
}

// Sync returns the states and route stats for routes (in the same order), creating
// missing ones, and drops every entry no longer in routes. Model stats are kept for
// modelIDs the same way. Breakers are (re)configured with threshold and timeout.
func (r *Registry) Sync(routes []Route, modelIDs []string, threshold int, timeout time.Duration) Synced {
	r.mu.Lock()
	defer r.mu.Unlock()
	states := make(map[config.BackendKey]*State, len(routes))
	rstats := make(map[Route]*RouteStats, len(routes))
	out := Synced{States: make([]*State, len(routes)), Routes: make([]*RouteStats, len(routes))}
	for i, rt := range routes {
		k := rt.Key
		s := states[k]
		if s == nil {
			s = r.states[k]
		}
		if s == nil {
			s = &State{Key: k, Label: k.String()}
		}
		s.Breaker.Configure(threshold, timeout)
		states[k] = s
		out.States[i] = s
		rs := rstats[rt]
		if rs == nil {
			rs = r.routes[rt]
		}
		if rs == nil {
			rs = &RouteStats{Model: rt.Model, Backend: s.Label}
		}
		rstats[rt] = rs
		out.Routes[i] = rs
	}
	r.states, r.routes = states, rstats
	models := make(map[string]*ModelStats, len(modelIDs))
	out.Models = make([]*ModelStats, len(modelIDs))
	for i, id := range modelIDs {
		m := r.models[id]
		if m == nil {
			m = &ModelStats{ID: id}
		}
		models[id] = m
		out.Models[i] = m
	}
	r.models = models
	return out
}

// Routes returns the current route stats sorted by model, then backend.
func (r *Registry) Routes() []*RouteStats {
	return sortedValues(r, func() map[Route]*RouteStats { return r.routes }, func(a, b *RouteStats) int {
		if c := strings.Compare(a.Model, b.Model); c != 0 {
			return c
		}
		return strings.Compare(a.Backend, b.Backend)
	})
}

// States returns the current states sorted by label, for exposition.
func (r *Registry) States() []*State {
	return sortedValues(r, func() map[config.BackendKey]*State { return r.states }, func(a, b *State) int { return strings.Compare(a.Label, b.Label) })
}

// Models returns the current model stats sorted by id.
func (r *Registry) Models() []*ModelStats {
	return sortedValues(r, func() map[string]*ModelStats { return r.models }, func(a, b *ModelStats) int { return strings.Compare(a.ID, b.ID) })
}

// sortedValues copies a map's values under the registry lock and sorts them outside it,
// so exposition never holds the lock the request path takes.
// The map is fetched under the lock too: a resync replaces it.
func sortedValues[K comparable, V any](r *Registry, get func() map[K]V, cmp func(a, b V) int) []V {
	r.mu.Lock()
	m := get()
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	r.mu.Unlock()
	slices.SortFunc(out, cmp)
	return out
}
