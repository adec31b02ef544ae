// Package balancer holds the load-balancing strategies a model can use. Each strategy
// lives in its own file and registers itself by name in init, so adding one touches
// nothing else: config validation and the edge's routing table look strategies up here.
package balancer

import (
	"fmt"
	"sort"
	"sync"
)

// Candidate is what a strategy sees of one available backend.
type Candidate struct {
	// Index is the caller's handle for the backend; strategies carry it along untouched.
	Index int
	// Weight is the configured relative weight (> 0).
	Weight float64
	// Priority orders failover tiers: lower is tried first.
	Priority int32
	// Latency is the current latency estimate in seconds (time to first token for
	// streams); 0 means no fresh samples.
	Latency float64
	// InFlight is the number of requests currently outstanding to the backend.
	InFlight int32
	// Seed is a stable hash of the backend's identity (HashKey of its label), the
	// same on every edge: session affinity (Pin) hashes keys with it.
	Seed uint64
}

// Strategy orders candidates: the first is tried first, the rest are the failover
// order. Order must not allocate and must be safe for concurrent use: one Strategy
// value serves every request for its model.
type Strategy interface {
	Order(cands []Candidate)
}

// Factory makes the Strategy for one model. Strategies with state (round-robin
// counters) keep it per model, so each model gets its own value.
type Factory func() Strategy

// Default is the strategy used when a model names none.
const Default = "weighted_random"

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a strategy available under name. It panics on a duplicate name, as
// that is a programming error caught at init.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[name]; dup {
		panic("balancer: strategy registered twice: " + name)
	}
	factories[name] = f
}

// Known reports whether a strategy with that name is registered.
func Known(name string) bool {
	mu.RLock()
	defer mu.RUnlock()
	_, ok := factories[name]
	return ok
}

// Names lists the registered strategies, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New returns a fresh Strategy by name; "" means Default.
func New(name string) (Strategy, error) {
	if name == "" {
		name = Default
	}
	mu.RLock()
	f, ok := factories[name]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("balancer: unknown strategy %q (known: %v)", name, Names())
	}
	return f(), nil
}
