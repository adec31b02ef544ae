// Package ratelimit enforces a key's requests per minute, hour and day on one edge,
// with a sliding-window counter per window: the previous fixed window's count,
// weighted by how much of it still overlaps the sliding window, plus the current one.
// That bounds bursts at window edges (a fixed window would let through twice the limit
// across a boundary) in constant memory. A request is counted only when every window
// admits it, so rejected requests consume no quota.
package ratelimit

import (
	"sync"
	"time"
)

// Limits are the allowed requests per window; 0 means unlimited.
type Limits struct{ PerMinute, PerHour, PerDay uint32 }

// Zero reports whether no limit is set.
func (l Limits) Zero() bool { return l.PerMinute == 0 && l.PerHour == 0 && l.PerDay == 0 }

type window struct {
	size        time.Duration
	limit       uint32
	start       int64 // current window index (unix time / size)
	cur, prev   uint32
	initialised bool
}

func (w *window) advance(now time.Time) {
	idx := now.UnixNano() / int64(w.size)
	switch {
	case !w.initialised:
		w.start, w.initialised = idx, true
	case idx == w.start+1:
		w.prev, w.cur, w.start = w.cur, 0, idx
	case idx > w.start+1:
		w.prev, w.cur, w.start = 0, 0, idx
	}
}

// estimate is the sliding-window request count at now (after advance).
func (w *window) estimate(now time.Time) float64 {
	into := float64(now.UnixNano()-w.start*int64(w.size)) / float64(w.size)
	return float64(w.prev)*(1-into) + float64(w.cur)
}

// wait is how long until one more request fits.
func (w *window) wait(now time.Time) time.Duration {
	if w.cur+1 > w.limit {
		// Only the next window can help; the previous one then weighs w.cur.
		next := time.Unix(0, (w.start+1)*int64(w.size))
		// In the next window the estimate is cur*(1-x); it fits when cur*(1-x)+1 <= limit.
		x := 1 - float64(w.limit-1)/float64(w.cur)
		return next.Sub(now) + time.Duration(x*float64(w.size))
	}
	// Fits once prev*(1-x) + cur + 1 <= limit.
	x := 1 - float64(w.limit-w.cur-1)/float64(w.prev)
	at := time.Unix(0, w.start*int64(w.size)+int64(x*float64(w.size)))
	return at.Sub(now)
}

// Limiter is one key's limiter; the zero value admits everything.
type Limiter struct {
	mu      sync.Mutex
	windows [3]window
}

// Configure sets the limits, keeping the counts (a reload must not reset quotas).
func (l *Limiter) Configure(lim Limits) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, v := range [3]struct {
		size  time.Duration
		limit uint32
	}{{time.Minute, lim.PerMinute}, {time.Hour, lim.PerHour}, {24 * time.Hour, lim.PerDay}} {
		l.windows[i].size, l.windows[i].limit = v.size, v.limit
	}
}

// Allow counts one request and returns true when every window admits it; otherwise
// it counts nothing and returns how long the caller should wait.
func (l *Limiter) Allow(now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	ok := true
	for i := range l.windows {
		w := &l.windows[i]
		if w.limit == 0 {
			continue
		}
		w.advance(now)
		if w.estimate(now)+1 > float64(w.limit) {
			ok = false
			if d := w.wait(now); d > wait {
				wait = d
			}
		}
	}
	if !ok {
		if wait < time.Second {
			wait = time.Second
		}
		return false, wait
	}
	for i := range l.windows {
		if l.windows[i].limit != 0 {
			l.windows[i].cur++
		}
	}
	return true, 0
}

// Registry keeps one Limiter per key id across config versions; the zero value is
// ready.
type Registry struct {
	mu       sync.Mutex
	limiters map[string]*Limiter
}

// Sync returns the limiters for ids (nil where limits are zero), configured with
// limits[i], and drops limiters of ids no longer present.
func (r *Registry) Sync(ids []string, limits []Limits) []*Limiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[string]*Limiter, len(ids))
	out := make([]*Limiter, len(ids))
	for i, id := range ids {
		if limits[i].Zero() {
			continue
		}
		l := r.limiters[id]
		if l == nil {
			l = &Limiter{}
		}
		l.Configure(limits[i])
		next[id] = l
		out[i] = l
	}
	r.limiters = next
	return out
}
