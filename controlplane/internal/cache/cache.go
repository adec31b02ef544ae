// Package cache holds what the control plane pushes to edges: the current routing
// snapshot and the latest fleet scores. Each is a value that only moves forward, with
// a broadcast of every change to the edge streams waiting for one. The caches are kept
// apart from the gRPC services, as in go-control-plane, so that what is published and
// how it is streamed can change independently.
package cache

import (
	"sync"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// watchable is the latest value of a sequence plus a broadcast of its changes. A value
// is taken only when its sequence number is above the current one, so writers racing
// each other cannot move it backwards. The zero value holds nothing and is ready for
// use.
type watchable[T any] struct {
	mu      sync.Mutex
	cur     T
	seq     uint64
	set     bool
	changed chan struct{} // closed and replaced on every newer value
}

func (w *watchable[T]) offer(v T, seq uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.set && seq <= w.seq {
		return false
	}
	w.publish(v, seq)
	return true
}

// offerIf takes v when newer says it is newer than the current value (or there is
// none), numbering it one above that value.
func (w *watchable[T]) offerIf(v T, newer func(cur T) bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.set && !newer(w.cur) {
		return false
	}
	w.publish(v, w.seq+1)
	return true
}

func (w *watchable[T]) publish(v T, seq uint64) {
	w.cur, w.seq, w.set = v, seq, true
	if w.changed != nil {
		close(w.changed)
	}
	w.changed = make(chan struct{})
}

func (w *watchable[T]) watch() (T, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.changed == nil {
		w.changed = make(chan struct{})
	}
	return w.cur, w.changed
}

// Snapshots is the current routing snapshot. The zero value is empty and ready for
// use.
type Snapshots struct {
	v watchable[*berryv1.Snapshot]
}

// Set publishes s if its version is above the current snapshot's and reports whether
// it did: versions only go up. s must not be modified afterwards.
func (c *Snapshots) Set(s *berryv1.Snapshot) bool { return c.v.offer(s, s.GetVersion()) }

// Watch returns the current snapshot (nil when none) and a channel that is closed when
// a newer one is set.
func (c *Snapshots) Watch() (*berryv1.Snapshot, <-chan struct{}) { return c.v.watch() }

// Scores is the latest merged fleet scores. The zero value is empty and ready for use.
// Epochs count within one instance (the process that merged them): a cluster member
// publishes its own merges while it leads and the leader's otherwise, so a message
// of another instance replaces the current one whatever its epoch, as on an edge.
type Scores struct {
	v watchable[*berryv1.FleetScores]
}

// Set publishes s if it comes from another instance than the current scores or has a
// higher epoch, and reports whether it did. s must not be modified afterwards.
func (c *Scores) Set(s *berryv1.FleetScores) bool {
	return c.v.offerIf(s, func(cur *berryv1.FleetScores) bool {
		return s.GetInstance() != cur.GetInstance() || s.GetEpoch() > cur.GetEpoch()
	})
}

// Watch returns the latest scores (nil when none) and a channel that is closed when
// newer ones are set.
func (c *Scores) Watch() (*berryv1.FleetScores, <-chan struct{}) { return c.v.watch() }
