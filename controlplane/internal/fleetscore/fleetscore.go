// Package fleetscore merges the latency and error observations that many edges report
// for the same backends into one fleet-wide score per backend. The control plane feeds
// it every edge's batches and pushes the merged scores back, so a backend one edge finds
// slow is avoided by all of them.
//
// Merging is robust by construction: each edge contributes its latest estimate with a
// weight from its recent sample count; weights are capped relative to the typical edge,
// and the merged value is a weighted median, so one edge reporting wild numbers cannot
// move the score alone while it is outnumbered.
//
// A backend's key is the caller's type (any comparable one), so the algorithm depends
// on nothing of the config.
package fleetscore

import (
	"slices"
	"sync"
	"time"
)

// Observation is one edge's report about one backend (keyed by K) for the last
// interval.
type Observation[K comparable] struct {
	// Backend is the stable backend key shared by edges and control plane.
	Backend K
	// Latency and TTFT are the edge's current estimates in seconds (0: no estimate).
	Latency, TTFT float64
	// Samples is how many latency samples the edge took since its last report.
	Samples uint32
	// Requests counts upstream attempts since the last report, whatever their outcome;
	// ClientErrors, ServerErrors and NoAnswer count those answered 4xx, answered 5xx,
	// and not answered at all (connect error, timeout, broken stream).
	Requests, ClientErrors, ServerErrors, NoAnswer uint32
}

// Score is the fleet's merged view of one backend.
type Score struct {
	Latency, TTFT float64 // weighted medians in seconds; 0 when nobody measured
	// Weight is the decayed sample count behind the score, summed over edges.
	Weight float64
	// Edges is how many edges contributed a live estimate.
	Edges int
	// Requests, ClientErrors, ServerErrors and NoAnswer are the fleet's recent (decayed)
	// attempts and their outcome classes, summed over edges.
	Requests, ClientErrors, ServerErrors, NoAnswer float64
	// ErrorRate is (ServerErrors + NoAnswer) / (Requests - ClientErrors), 0 when no
	// attempt speaks to the backend's health: a 4xx is about the request, not the
	// backend, so it counts neither for nor against it.
	ErrorRate float64
}

// Merger accumulates observations of backends keyed by K. The zero value is ready for
// use with default settings; it is safe for concurrent use.
type Merger[K comparable] struct {
	// TTL expires an edge's contribution when it has not reported for this long
	// (default 10s).
	TTL time.Duration
	// Decay is the fraction of an edge's sample weight and counts kept per report
	// (default 0.5): recent intervals dominate, old ones fade.
	Decay float64
	// MinShare is the fraction of the heaviest edge's weight below which the estimate
	// of an edge that took no sample in its last report does not count (default 0.1):
	// edges that stopped sending to a backend must not outvote, with their old numbers,
	// the edge that measures it now. Their request and error counts still count.
	MinShare float64

	mu       sync.Mutex
	backends map[K]*backend
	epoch    uint64
}

type backend struct {
	edges map[string]*contribution
}

type contribution struct {
	latency, ttft float64
	weight        float64
	// Decayed attempt counts: all, 4xx, 5xx and no answer.
	requests, client, server, noAnswer float64
	at                                 time.Time
	sampling                           bool // the last report had samples
}

// Observe records a batch from one edge taken at time at.
func (m *Merger[K]) Observe(edge string, at time.Time, batch []Observation[K]) {
	decay := m.Decay
	if decay <= 0 || decay >= 1 {
		decay = 0.5
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.backends == nil {
		m.backends = make(map[K]*backend)
	}
	for i := range batch {
		o := &batch[i]
		b := m.backends[o.Backend]
		if b == nil {
			b = &backend{edges: make(map[string]*contribution)}
			m.backends[o.Backend] = b
		}
		c := b.edges[edge]
		if c == nil {
			c = &contribution{}
			b.edges[edge] = c
		}
		// 0 means the edge has no fresh estimate any more: drop the old one.
		c.latency, c.ttft = o.Latency, o.TTFT
		c.weight = c.weight*decay + float64(o.Samples)
		c.requests = c.requests*decay + float64(o.Requests)
		c.client = c.client*decay + float64(o.ClientErrors)
		c.server = c.server*decay + float64(o.ServerErrors)
		c.noAnswer = c.noAnswer*decay + float64(o.NoAnswer)
		c.at = at
		c.sampling = o.Samples > 0
	}
}

// RemoveEdge drops an edge's contributions at once (it disconnected for good).
func (m *Merger[K]) RemoveEdge(edge string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.backends {
		delete(b.edges, edge)
	}
}

// Scores merges the live contributions as of now and returns them with a new epoch;
// expired contributions and backends nobody reports on any more are dropped.
func (m *Merger[K]) Scores(now time.Time) (epoch uint64, scores map[K]Score) {
	ttl := m.TTL
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	minShare := m.MinShare
	if minShare <= 0 || minShare >= 1 {
		minShare = 0.1
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.epoch++
	scores = make(map[K]Score, len(m.backends))
	var lat, ttft []weighted
	var weights []float64
	for key, b := range m.backends {
		lat, ttft, weights = lat[:0], ttft[:0], weights[:0]
		var s Score
		var heaviest float64
		for id, c := range b.edges {
			if now.Sub(c.at) > ttl {
				delete(b.edges, id)
				continue
			}
			heaviest = max(heaviest, c.weight)
		}
		minWeight := heaviest * minShare
		for _, c := range b.edges {
			s.Requests += c.requests
			s.ClientErrors += c.client
			s.ServerErrors += c.server
			s.NoAnswer += c.noAnswer
			if c.weight <= 0 || (!c.sampling && c.weight < minWeight) {
				continue
			}
			s.Edges++
			s.Weight += c.weight
			weights = append(weights, c.weight)
			if c.latency > 0 {
				lat = append(lat, weighted{c.latency, c.weight})
			}
			if c.ttft > 0 {
				ttft = append(ttft, weighted{c.ttft, c.weight})
			}
		}
		if len(b.edges) == 0 {
			delete(m.backends, key)
			continue
		}
		if judged := s.Requests - s.ClientErrors; judged > 0 {
			s.ErrorRate = (s.ServerErrors + s.NoAnswer) / judged
		}
		limit := weightCap(weights)
		s.Latency = weightedMedian(lat, limit)
		s.TTFT = weightedMedian(ttft, limit)
		scores[key] = s
	}
	return m.epoch, scores
}

type weighted struct{ v, w float64 }

// weightCap bounds one edge's weight at twice the median edge's, so an edge that
// sends most of the traffic still counts most, but not as the whole fleet.
func weightCap(ws []float64) float64 {
	if len(ws) < 3 {
		return 0 // too few edges for "typical" to mean anything
	}
	slices.Sort(ws)
	return 2 * ws[len(ws)/2]
}

func weightedMedian(xs []weighted, limit float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.SortFunc(xs, func(a, b weighted) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	total := 0.0
	for i := range xs {
		if limit > 0 && xs[i].w > limit {
			xs[i].w = limit
		}
		total += xs[i].w
	}
	half, acc := total/2, 0.0
	for _, x := range xs {
		acc += x.w
		if acc >= half {
			return x.v
		}
	}
	return xs[len(xs)-1].v
}
