package backends

import (
	"strconv"
	"time"

	"github.com/berry-gateway/berry/edge/internal/breaker"
	"github.com/berry-gateway/berry/pkg/config"
)

// Score is the fleet's merged view of one backend, as the control plane pushed it.
type Score struct {
	Key config.BackendKey
	// Latency and TTFT are the fleet's estimates in seconds; 0: nobody measured.
	Latency, TTFT float64
	// Down: the fleet's error rate marks the backend down everywhere.
	Down bool
	// ProbeOwner is the edge that probes the backend's provider; ProbeHealthy is its
	// last result, valid when Probed.
	ProbeOwner           string
	Probed, ProbeHealthy bool
}

// ApplyScores installs the fleet's scores, valid until expires; self is this edge's
// id. Each backend's latency estimate blends them with the local samples. A backend
// the fleet marks down has its local breaker tripped when the mark appears, so it
// leaves rotation here too until the breaker's own half-open trial finds it serving
// again. A failed probe of the edge that probes the backend's provider acts the same
// way: it trips the breaker when it appears, and this edge's own trial brings the
// backend back, so one edge's verdict cannot keep a provider out of every edge.
// Backends absent from scores fall back to local estimates.
func (r *Registry) ApplyScores(scores []Score, self string, now, expires time.Time) {
	byKey := make(map[config.BackendKey]*Score, len(scores))
	for i := range scores {
		byKey[scores[i].Key] = &scores[i]
	}
	for _, s := range r.States() {
		sc := byKey[s.Key]
		if sc == nil {
			s.Latency.SetFleet(0, 0, time.Time{})
			s.fleetDown.Store(false)
			continue
		}
		s.Latency.SetFleet(sc.Latency, sc.TTFT, expires)
		if !sc.Down {
			s.fleetDown.Store(false)
		} else if !s.fleetDown.Swap(true) && s.Breaker.State(now) != breaker.Open {
			s.Breaker.Trip(now)
		}
		switch o := sc.ProbeOwner; {
		case o == "" || o == self || !sc.Probed:
			s.remoteProbe.Store(nil)
		case sc.ProbeHealthy:
			s.SetProbe(true, "") // another edge probes it: this edge's verdict is stale
			s.remoteProbe.Store(nil)
		default:
			s.SetProbe(true, "")
			msg := "failed the health probe of edge " + strconv.Quote(o)
			if s.remoteProbe.Swap(&msg) == nil && s.Breaker.State(now) != breaker.Open {
				s.Breaker.Trip(now)
			}
		}
	}
}

// ClearFleet drops every fleet score (the control plane is gone): local estimates only.
func (r *Registry) ClearFleet() { r.ApplyScores(nil, "", time.Time{}, time.Time{}) }

// FleetDown reports whether the last fleet scores marked the backend down.
func (s *State) FleetDown() bool { return s.fleetDown.Load() }
