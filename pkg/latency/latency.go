// Package latency keeps a peak-EWMA latency estimate per backend: a sample slower than
// the estimate takes effect at once (a backend that turns slow is avoided at once),
// faster samples decay in with a time constant (a backend that recovers wins traffic
// back gradually). Time to first token is tracked separately, for ranking streams.
// An estimate with no sample for Stale is reported as unknown, so a backend that was
// slow once is explored again instead of being starved forever.
package latency

import (
	"math"
	"sync"
	"time"
)

// Defaults used for zero fields.
const (
	DefaultDecay = 10 * time.Second
	DefaultStale = 30 * time.Second
)

// Estimator is safe for concurrent use; the zero value is ready with the defaults.
type Estimator struct {
	// Decay is the time constant over which faster samples pull the estimate down.
	Decay time.Duration
	// Stale is how long an estimate stays valid without new samples.
	Stale time.Duration

	mu         sync.Mutex
	total      ewma
	firstToken ewma
}

type ewma struct {
	value float64 // seconds
	last  time.Time
}

func (e *ewma) observe(sample float64, now time.Time, decay time.Duration) {
	switch {
	case e.last.IsZero() || sample >= e.value:
		e.value = sample
	default:
		dt := now.Sub(e.last)
		if dt < 0 {
			dt = 0
		}
		w := math.Exp(-float64(dt) / float64(decay))
		e.value = e.value*w + sample*(1-w)
	}
	e.last = now
}

func (e *ewma) get(now time.Time, stale time.Duration) float64 {
	if e.last.IsZero() || now.Sub(e.last) > stale {
		return 0
	}
	return e.value
}

func (e *Estimator) params() (time.Duration, time.Duration) {
	d, s := e.Decay, e.Stale
	if d <= 0 {
		d = DefaultDecay
	}
	if s <= 0 {
		s = DefaultStale
	}
	return d, s
}

// Observe records the total duration of a completed request.
func (e *Estimator) Observe(d time.Duration, now time.Time) {
	decay, _ := e.params()
	e.mu.Lock()
	e.total.observe(d.Seconds(), now, decay)
	e.mu.Unlock()
}

// ObserveFirstToken records a stream's time to first token.
func (e *Estimator) ObserveFirstToken(d time.Duration, now time.Time) {
	decay, _ := e.params()
	e.mu.Lock()
	e.firstToken.observe(d.Seconds(), now, decay)
	e.mu.Unlock()
}

// Latency returns the estimate in seconds, 0 when there is no fresh sample.
func (e *Estimator) Latency(now time.Time) float64 {
	_, stale := e.params()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.total.get(now, stale)
}

// FirstToken returns the time-to-first-token estimate in seconds, 0 when there is no
// fresh sample.
func (e *Estimator) FirstToken(now time.Time) float64 {
	_, stale := e.params()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.firstToken.get(now, stale)
}
