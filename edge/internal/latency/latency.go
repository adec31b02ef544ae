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

	// own is the decayed count of this process's recent samples: how much the local
	// estimate is worth against the fleet's.
	own     float64
	ownAt   time.Time
	pending uint32 // samples since the last TakeSamples

	fleet fleetScore
}

// fleetScore is the control plane's merged estimate, valid until expires.
type fleetScore struct {
	latency, firstToken float64
	expires             time.Time
}

// FleetPrior is how many recent own samples count as much as the fleet's score: with
// FleetPrior own samples in the last Decay the blend is half and half, and own samples
// win as they grow more plentiful.
const FleetPrior = 4

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
	e.count(now, decay)
	e.mu.Unlock()
}

// ObserveFirstToken records a stream's time to first token.
func (e *Estimator) ObserveFirstToken(d time.Duration, now time.Time) {
	decay, _ := e.params()
	e.mu.Lock()
	e.firstToken.observe(d.Seconds(), now, decay)
	e.count(now, decay)
	e.mu.Unlock()
}

func (e *Estimator) count(now time.Time, decay time.Duration) {
	e.own = e.ownWeight(now, decay) + 1
	e.ownAt = now
	e.pending++
}

func (e *Estimator) ownWeight(now time.Time, decay time.Duration) float64 {
	if e.ownAt.IsZero() {
		return 0
	}
	dt := now.Sub(e.ownAt)
	if dt <= 0 {
		return e.own
	}
	return e.own * math.Exp(-float64(dt)/float64(decay))
}

// Latency returns the estimate in seconds, 0 when there is no fresh sample: the local
// estimate blended with a live fleet score (see SetFleet).
func (e *Estimator) Latency(now time.Time) float64 {
	decay, stale := e.params()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.blend(e.total.get(now, stale), e.fleet.latency, now, decay)
}

// FirstToken returns the time-to-first-token estimate in seconds, 0 when there is no
// fresh sample, blended with a live fleet score like Latency.
func (e *Estimator) FirstToken(now time.Time) float64 {
	decay, stale := e.params()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.blend(e.firstToken.get(now, stale), e.fleet.firstToken, now, decay)
}

// blend weighs the local estimate by the recent own samples against the fleet score
// worth FleetPrior samples: a quiet edge follows the fleet, a busy one its own
// measurements. A local sample slower than the fleet still takes effect at once in
// proportion to its weight, so a backend this edge finds slow is demoted quickly.
func (e *Estimator) blend(local, fleet float64, now time.Time, decay time.Duration) float64 {
	if fleet <= 0 || !now.Before(e.fleet.expires) {
		return local
	}
	if local <= 0 {
		return fleet
	}
	w := e.ownWeight(now, decay)
	return (w*local + FleetPrior*fleet) / (w + FleetPrior)
}

// LocalLatency and LocalFirstToken return this process's own estimates alone (0 when
// no fresh sample), which is what an edge reports to the control plane.
func (e *Estimator) LocalLatency(now time.Time) float64 {
	_, stale := e.params()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.total.get(now, stale)
}

// LocalFirstToken: see LocalLatency.
func (e *Estimator) LocalFirstToken(now time.Time) float64 {
	_, stale := e.params()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.firstToken.get(now, stale)
}

// FleetLatency and FleetFirstToken return the live fleet score (0 when none).
func (e *Estimator) FleetLatency(now time.Time) float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !now.Before(e.fleet.expires) {
		return 0
	}
	return e.fleet.latency
}

// FleetFirstToken: see FleetLatency.
func (e *Estimator) FleetFirstToken(now time.Time) float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !now.Before(e.fleet.expires) {
		return 0
	}
	return e.fleet.firstToken
}

// SetFleet installs the fleet's merged estimates (seconds, 0 for unknown), valid until
// expires; a control plane that goes quiet thus leaves the edge on its own estimates.
func (e *Estimator) SetFleet(latency, firstToken float64, expires time.Time) {
	e.mu.Lock()
	e.fleet = fleetScore{latency: latency, firstToken: firstToken, expires: expires}
	e.mu.Unlock()
}

// TakeSamples returns how many samples were taken since the previous call.
func (e *Estimator) TakeSamples() uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.pending
	e.pending = 0
	return n
}
