package cpsync

import (
	"github.com/berry-gateway/berry/edge/internal/backends"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
)

// The fleet messages as the edge's runtime sees them and as they travel.

func observationsToWire(obs []backends.Observation) []*berryv1.BackendObservation {
	out := make([]*berryv1.BackendObservation, len(obs))
	for i := range obs {
		o := &obs[i]
		out[i] = &berryv1.BackendObservation{
			Provider: o.Key.Provider, UpstreamModel: o.Key.Model,
			LatencySeconds: o.Latency, TtftSeconds: o.TTFT, Samples: o.Samples,
			Requests: o.Requests(),
			// An attempt that outlasted its timeout while the backend answered others is,
			// like a 4xx, about the request: it weighs for neither side of the fleet's
			// health.
			ClientErrors: o.Attempts[backends.Class4xx] + o.Attempts[backends.ClassTooLong],
			ServerErrors: o.Attempts[backends.Class5xx],
			NoAnswer:     o.Attempts[backends.ClassError],
			InFlight:     o.InFlight, ProbeHealthy: o.ProbeHealthy,
		}
	}
	return out
}

func scoresFromWire(fs *berryv1.FleetScores) []backends.Score {
	out := make([]backends.Score, len(fs.GetBackends()))
	for i, sc := range fs.GetBackends() {
		out[i] = backends.Score{
			Key:     config.BackendKey{Provider: sc.GetProvider(), Model: sc.GetUpstreamModel()},
			Latency: sc.GetLatencySeconds(), TTFT: sc.GetTtftSeconds(), Down: sc.GetDown(),
			ProbeOwner: sc.GetProbeOwner(), Probed: sc.GetProbed(), ProbeHealthy: sc.GetProbeHealthy(),
		}
	}
	return out
}

// mergeObservations folds newer observations into older ones: counts add up, the
// estimates, in-flight count and probe result are the newer ones.
func mergeObservations(old, newer []*berryv1.BackendObservation) []*berryv1.BackendObservation {
	idx := make(map[config.BackendKey]*berryv1.BackendObservation, len(old))
	for _, o := range old {
		idx[config.BackendKey{Provider: o.GetProvider(), Model: o.GetUpstreamModel()}] = o
	}
	for _, n := range newer {
		o := idx[config.BackendKey{Provider: n.GetProvider(), Model: n.GetUpstreamModel()}]
		if o == nil {
			old = append(old, n)
			continue
		}
		o.Samples += n.GetSamples()
		o.Requests += n.GetRequests()
		o.ClientErrors += n.GetClientErrors()
		o.ServerErrors += n.GetServerErrors()
		o.NoAnswer += n.GetNoAnswer()
		o.LatencySeconds, o.TtftSeconds = n.GetLatencySeconds(), n.GetTtftSeconds()
		o.InFlight, o.ProbeHealthy = n.GetInFlight(), n.GetProbeHealthy()
	}
	return old
}
