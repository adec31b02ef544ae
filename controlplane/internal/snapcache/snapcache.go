// Package snapcache holds the control plane's current routing snapshot and wakes the
// edge streams waiting for a newer one. It is kept apart from the gRPC server, like
// go-control-plane's snapshot cache, so that what is published and how it is streamed
// can change independently.
package snapcache

import (
	"sync"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// Cache is the current snapshot plus a broadcast of its changes. The zero value is an
// empty cache ready for use.
type Cache struct {
	mu      sync.Mutex
	cur     *berryv1.Snapshot
	changed chan struct{} // closed and replaced on every Set
}

// Set publishes s if it is newer than the current snapshot and reports whether it did;
// versions only go up, so concurrent writers cannot publish out of order. s must not be
// modified afterwards.
func (c *Cache) Set(s *berryv1.Snapshot) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && s.GetVersion() <= c.cur.GetVersion() {
		return false
	}
	c.cur = s
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
	return true
}

// Watch returns the current snapshot (nil when none) and a channel that is closed when
// a newer one is set.
func (c *Cache) Watch() (*berryv1.Snapshot, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.cur, c.changed
}
