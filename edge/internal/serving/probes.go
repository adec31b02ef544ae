package serving

import (
	"sync"
	"time"
)

// probeAssignment is coordinated probing as this edge sees it: the control plane gives
// each provider's active probes to one connected edge. Without assignments (standalone,
// or no control plane) every provider is probed locally; while connected and not yet
// assigned, none are, until waitUntil passes.
type probeAssignment struct {
	mu        sync.Mutex
	owners    map[string]string // provider id → probing edge
	self      string
	assigned  bool
	waitUntil time.Time
}

func (p *probeAssignment) assign(owners map[string]string, self string) {
	p.mu.Lock()
	p.owners, p.self, p.assigned, p.waitUntil = owners, self, true, time.Time{}
	p.mu.Unlock()
}

func (p *probeAssignment) clear() {
	p.mu.Lock()
	p.owners, p.self, p.assigned, p.waitUntil = nil, "", false, time.Time{}
	p.mu.Unlock()
}

// AwaitProbeAssignment says the edge is connected and will receive probe
// assignments: it probes nothing until they arrive or until passes (a control plane
// that never sends them).
func (r *Runtime) AwaitProbeAssignment(until time.Time) {
	p := &r.probes
	p.mu.Lock()
	p.owners, p.self, p.assigned, p.waitUntil = nil, "", false, until
	p.mu.Unlock()
}

// ProbeAssigned reports whether this edge runs the active probes of provider now.
func (r *Runtime) ProbeAssigned(provider string, now time.Time) bool {
	p := &r.probes
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.assigned:
		o, ok := p.owners[provider]
		return !ok || o == p.self // a provider the control plane does not know: probe it
	case now.Before(p.waitUntil):
		return false
	}
	return true
}
