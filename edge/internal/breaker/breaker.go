// Package breaker is a per-backend circuit breaker: closed until Threshold consecutive
// failures, then open (no traffic) for Timeout, then half-open, where exactly one trial
// request goes through; its success closes the breaker, its failure opens it again.
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

// Breaker is safe for concurrent use; the zero value is a closed breaker with the
// seed format's default threshold and timeout.
type Breaker struct {
	mu        sync.Mutex
	threshold int
	timeout   time.Duration
	state     State
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

// Available reports whether a request could go through now, without claiming the
// half-open trial: used to filter candidates before ordering them.
func (b *Breaker) Available(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return true
	case Open:
		_, to := b.limits()
		return !now.Before(b.openedAt.Add(to))
	}
	return !b.trial
}

// Acquire claims the right to send one request. In the half-open state only one
// caller gets true until that trial reports Success or Failure.
func (b *Breaker) Acquire(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return true
	case Open:
		_, to := b.limits()
		if now.Before(b.openedAt.Add(to)) {
			return false
		}
		b.state = HalfOpen
	}
	if b.trial {
		return false
	}
	b.trial = true
	return true
}

// Success records a request the backend served: it resets the failure count and
// closes a half-open breaker.
func (b *Breaker) Success() {
	b.mu.Lock()
	b.failures = 0
	b.state = Closed
	b.trial = false
	b.mu.Unlock()
}

// Failure records a failed request; it opens the breaker at the threshold, or at once
// when it was the half-open trial.
func (b *Breaker) Failure(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	th, _ := b.limits()
	b.failures++
	if b.state == HalfOpen || b.failures >= th {
		b.state = Open
		b.openedAt = now
		b.trial = false
	}
}

// Trip opens the breaker at now whatever its state, as if the threshold had just been
// reached: used when the fleet marks the backend down. Its ordinary timeout and
// half-open trial then decide when requests go through again.
func (b *Breaker) Trip(now time.Time) {
	b.mu.Lock()
	b.state = Open
	b.openedAt = now
	b.trial = false
	b.mu.Unlock()
}

// Release gives back a half-open trial whose outcome says nothing about the backend
// (the request was never sent, or the client went away).
func (b *Breaker) Release() {
	b.mu.Lock()
	if b.state == HalfOpen {
		b.trial = false
	}
	b.mu.Unlock()
}

// State returns the breaker's position as of now: an open breaker whose timeout has
// passed reports HalfOpen.
func (b *Breaker) State(now time.Time) State {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open {
		if _, to := b.limits(); !now.Before(b.openedAt.Add(to)) {
			return HalfOpen
		}
	}
	return b.state
}
