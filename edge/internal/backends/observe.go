package backends

import (
	"time"

	"github.com/berry-gateway/berry/pkg/config"
)

// Observation is what this edge saw of one backend since the previous report.
type Observation struct {
	Key config.BackendKey
	// Latency and TTFT are this edge's own estimates in seconds; 0: no fresh sample.
	Latency, TTFT float64
	// Samples is how many latency samples were taken.
	Samples uint32
	// Attempts counts upstream attempts by outcome class.
	Attempts [NumClasses]uint32
	InFlight uint32
	// ProbeHealthy is the last active probe's verdict (true when never probed).
	ProbeHealthy bool
}

// Requests is the number of attempts, whatever their outcome.
func (o *Observation) Requests() uint32 {
	var n uint32
	for _, c := range o.Attempts {
		n += c
	}
	return n
}

// reported holds a backend's cumulative attempt counts at its last observation, so
// each one carries only what happened since; guarded by Registry.reportMu.
type reported struct {
	byClass [NumClasses]uint64
}

// Observations returns, per configured backend, what this edge saw since the previous
// call: its own estimates, samples, attempts by class, in-flight requests and the last
// probe result. It is called by one reporter at a time.
func (r *Registry) Observations(now time.Time) []Observation {
	r.mu.Lock()
	sums := make(map[config.BackendKey]*[NumClasses]uint64, len(r.states))
	for rt, rs := range r.routes {
		sum := sums[rt.Key]
		if sum == nil {
			sum = new([NumClasses]uint64)
			sums[rt.Key] = sum
		}
		for c := range rs.Requests {
			sum[c] += rs.Requests[c].Load()
		}
	}
	states := make([]*State, 0, len(r.states))
	for _, s := range r.states {
		states = append(states, s)
	}
	r.mu.Unlock()

	r.reportMu.Lock()
	defer r.reportMu.Unlock()
	out := make([]Observation, 0, len(states))
	for _, s := range states {
		o := Observation{
			Key:          s.Key,
			Latency:      s.Latency.LocalLatency(now),
			TTFT:         s.Latency.LocalFirstToken(now),
			Samples:      s.Latency.TakeSamples(),
			InFlight:     uint32(max(s.InFlight.Load(), 0)),
			ProbeHealthy: s.ProbeHealthy(),
		}
		if sum := sums[s.Key]; sum != nil {
			for c := range sum {
				// Route counters of a route dropped by a config change vanish with it,
				// so a sum may go down: count from the new base then.
				if sum[c] >= s.reported.byClass[c] {
					o.Attempts[c] = uint32(sum[c] - s.reported.byClass[c])
				}
			}
			s.reported = reported{byClass: *sum}
		}
		out = append(out, o)
	}
	return out
}
