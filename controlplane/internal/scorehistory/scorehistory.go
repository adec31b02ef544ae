// Package scorehistory keeps the fleet's recent merged scores: a fixed number of
// samples taken at a fixed interval (by default one every 30 s for an hour), in
// memory only, for the console's sparklines. Older samples are overwritten; a
// restart starts empty.
package scorehistory

import (
	"sync"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Defaults: one sample every 30 s for the last hour.
const (
	DefaultInterval = 30 * time.Second
	DefaultSpan     = time.Hour
)

// Sample is the fleet's scores at one time. Scores is shared, never modified.
type Sample struct {
	Time   time.Time
	Scores *berryv1.FleetScores
}

// Ring is a bounded history of samples, safe for concurrent use: one sampler adds,
// any number of readers read.
type Ring struct {
	interval time.Duration

	mu   sync.Mutex
	buf  []Sample // circular; next is the oldest once full
	next int
	full bool
}

// New returns a ring of the samples taken every interval over span (at least one);
// a zero interval or span takes the default.
func New(interval, span time.Duration) *Ring {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if span <= 0 {
		span = DefaultSpan
	}
	n := max(int(span/interval), 1)
	return &Ring{interval: interval, buf: make([]Sample, n)}
}

// Interval is the time between two samples.
func (r *Ring) Interval() time.Duration { return r.interval }

// Span is how far back the samples go at most.
func (r *Ring) Span() time.Duration { return r.interval * time.Duration(len(r.buf)) }

// Add records s taken at t, dropping the oldest sample when the ring is full.
func (r *Ring) Add(t time.Time, s *berryv1.FleetScores) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = Sample{Time: t, Scores: s}
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// Since returns the samples taken at or after t, oldest first (every sample for the
// zero t).
func (r *Ring) Since(t time.Time) []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Sample
	add := func(ss []Sample) {
		for _, s := range ss {
			if !s.Time.Before(t) {
				out = append(out, s)
			}
		}
	}
	if r.full {
		add(r.buf[r.next:])
	}
	add(r.buf[:r.next])
	return out
}

// Series turns samples into one history per backend, in the order the backends first
// appear, keeping only the backends keep accepts (nil keeps all).
func Series(samples []Sample, keep func(config.BackendKey) bool) []*berryv1.BackendScoreHistory {
	var out []*berryv1.BackendScoreHistory
	index := map[config.BackendKey]int{}
	for _, s := range samples {
		at := timestamppb.New(s.Time)
		for _, b := range s.Scores.GetBackends() {
			k := config.BackendKey{Provider: b.GetProvider(), Model: b.GetUpstreamModel()}
			if keep != nil && !keep(k) {
				continue
			}
			i, ok := index[k]
			if !ok {
				i = len(out)
				index[k] = i
				out = append(out, &berryv1.BackendScoreHistory{Provider: k.Provider, UpstreamModel: k.Model})
			}
			out[i].Samples = append(out[i].Samples, &berryv1.ScoreSample{
				Time: at, LatencySeconds: b.GetLatencySeconds(), TtftSeconds: b.GetTtftSeconds(),
				ErrorRate: b.GetErrorRate(), Requests: b.GetRequests(), Down: b.GetDown(), Edges: b.GetEdges(),
			})
		}
	}
	return out
}
