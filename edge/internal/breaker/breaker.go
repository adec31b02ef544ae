// Package breaker is a per-backend circuit breaker: closed until Threshold consecutive
// failures, then open (no traffic) for Timeout, then half-open, where exactly one trial
// request goes through; its success closes the breaker, its failure opens it again.
//
// Every request the breaker admits carries a Ticket naming the generation that
// admitted it, and its result counts only in that generation: a long stream admitted
// while the breaker was closed and finishing after it opened does not close it again,
// a late failure does not re-open a breaker that has since closed, and only the
// holder of the half-open trial can end the trial.
package breaker

import (
	"sync"
	"time"

	"github.com/berry-gateway/berry/pkg/config"
)

// State is a breaker's position.
type State uint8

// States.
const (
	Closed State = iota
	Open
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	}
	return "half_open"
}

// Ticket is a request's admission by the breaker, to hand back with its result.
type Ticket struct {
	gen   uint64
	trial bool
}

// Trial reports whether the ticket is the half-open trial: the request that decides
// whether the backend rejoins. It should go over a fresh connection, so that a pooled
// connection the backend closed while it was down does not decide for it.
func (t Ticket) Trial() bool { return t.trial }

// Breaker is safe for concurrent use; the zero value is a closed breaker with the
// seed format's default threshold and timeout.
type Breaker struct {
	mu        sync.Mutex
	threshold int
	timeout   time.Duration
	state     State
	gen       uint64 // changes with every change of state and every trial handed out
	failures  int
	openedAt  time.Time
	trial     bool // a half-open trial is in flight
}

// Configure sets the threshold and timeout (0 means the default) without resetting
// the breaker's state, so a config reload keeps an open breaker open.
func (b *Breaker) Configure(threshold int, timeout time.Duration) {
	b.mu.Lock()
	b.threshold, b.timeout = threshold, timeout
	b.mu.Unlock()
}

func (b *Breaker) limits() (int, time.Duration) {
	th, to := b.threshold, b.timeout
	if th <= 0 {
		th = config.DefaultCircuitBreakerFailureThreshold
	}
	if to <= 0 {
		to = config.DefaultCircuitBreakerTimeoutSeconds * time.Second
	}
	return th, to
}

// expired reports whether an open breaker's timeout has passed at now.
func (b *Breaker) expired(now time.Time) bool {
	_, to := b.limits()
	return !now.Before(b.openedAt.Add(to))
}

// Available reports whether a request could go through now, without claiming the
// half-open trial: used to filter candidates before ordering them.
func (b *Breaker) Available(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return true
	case Open:
		return b.expired(now)
	}
	return !b.trial
}

// Acquire admits one request, or refuses it (false). In the half-open state only one
// caller gets the trial until it reports its result or releases it.
func (b *Breaker) Acquire(now time.Time) (Ticket, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return Ticket{gen: b.gen}, true
	case Open:
		if !b.expired(now) {
			return Ticket{}, false
		}
		b.state = HalfOpen
	}
	if b.trial {
		return Ticket{}, false
	}
	b.trial = true
	b.gen++
	return Ticket{gen: b.gen, trial: true}, true
}

// Success records that the backend served the request admitted with t: in the
// generation that admitted it, it resets the failure count, and as the half-open
// trial it closes the breaker. A result from an older generation changes nothing.
func (b *Breaker) Success(t Ticket) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.gen != b.gen {
		return
	}
	switch {
	case b.state == Closed:
		b.failures = 0
	case b.state == HalfOpen && t.trial:
		b.state, b.failures, b.trial = Closed, 0, false
		b.gen++
	}
}

// Failure records that the request admitted with t failed at now: in the generation
// that admitted it, it opens a closed breaker at the threshold, or a half-open one at
// once when it was the trial. A result from an older generation changes nothing.
func (b *Breaker) Failure(t Ticket, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.gen != b.gen {
		return
	}
	switch {
	case b.state == Closed:
		b.failures++
		if th, _ := b.limits(); b.failures >= th {
			b.open(now)
		}
	case b.state == HalfOpen && t.trial:
		b.open(now)
	}
}

// Release gives back the half-open trial held by t when its outcome says nothing
// about the backend (the request was never sent, or the client went away); any other
// ticket needs no release.
func (b *Breaker) Release(t Ticket) {
	b.mu.Lock()
	if t.trial && t.gen == b.gen && b.state == HalfOpen {
		b.trial = false
	}
	b.mu.Unlock()
}

// Trip opens the breaker at now whatever its state, as if the threshold had just been
// reached: used when the fleet marks the backend down. Its ordinary timeout and
// half-open trial then decide when requests go through again.
func (b *Breaker) Trip(now time.Time) {
	b.mu.Lock()
	b.open(now)
	b.mu.Unlock()
}

func (b *Breaker) open(now time.Time) {
	b.state, b.openedAt, b.trial = Open, now, false
	b.gen++
}

// State returns the breaker's position as of now: an open breaker whose timeout has
// passed reports HalfOpen.
func (b *Breaker) State(now time.Time) State {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open && b.expired(now) {
		return HalfOpen
	}
	return b.state
}
