package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/cache"
	"github.com/berry-gateway/berry/controlplane/internal/fleetscore"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
)

// Fleet-score defaults.
const (
	// DefaultScoreInterval is how often scores are merged and pushed unless set.
	DefaultScoreInterval = time.Second
	// DownErrorRate is the merged error rate at which a backend is marked down for
	// the whole fleet, once the fleet's recent attempts that speak to its health (all
	// but the 4xx answers) reach the config's breaker threshold.
	DownErrorRate = 0.5
)

// ScoreService merges what the edges observe into fleet-wide scores and publishes them
// to the scores cache every interval. It implements EdgeCallbacks: the edge service
// hands it every stream and observation batch. It also assigns each provider's active
// probes to one connected edge and shares that edge's probe results.
type ScoreService struct {
	snapshots *cache.Snapshots // the config: breaker threshold, providers to assign
	scores    *cache.Scores    // where merged scores go
	interval  time.Duration
	instance  string // names this process's epochs to edges
	// publishing reports whether this control plane publishes its merges: always on
	// one node; on a cluster, only the leader (the others publish the leader's scores,
	// which it merges from the whole fleet's observations: relay.go).
	publishing func() bool

	merger   fleetscore.Merger[config.BackendKey]
	observed atomic.Uint64 // backend observations absorbed
	batches  atomic.Uint64 // observation batches received
	merges   atomic.Uint64 // merges published

	mu      sync.Mutex
	owners  map[string]string // provider id → probing edge, as last pushed
	streams map[string]int    // edge id → open Sync streams (a reconnect overlaps the old one)
	// reporting holds the edges with an open stream that have sent observations:
	// only they are given probes. On a cluster's leader the streams followers relay
	// count too, so probes are assigned over the whole fleet.
	reporting map[string]bool
	probes    map[config.BackendKey]bool // the owner's last probe result per backend
}

// NewScoreService returns a score service reading the config from snapshots,
// publishing to scores every interval (default DefaultScoreInterval); an edge's
// observations expire after ttl without a report (default: the merger's, 10s).
func NewScoreService(snapshots *cache.Snapshots, scores *cache.Scores, interval, ttl time.Duration) *ScoreService {
	if interval <= 0 {
		interval = DefaultScoreInterval
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	s := &ScoreService{
		snapshots: snapshots, scores: scores,
		interval: interval, instance: hex.EncodeToString(b[:]),
	}
	s.merger.TTL = ttl
	return s
}

// Run merges and publishes the scores every interval until ctx ends.
func (s *ScoreService) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if s.publishing != nil && !s.publishing() {
				continue
			}
			s.scores.Set(s.merge(now))
			s.merges.Add(1)
		}
	}
}

// StreamOpened implements EdgeCallbacks: it counts an edge's streams, and the returned
// func, called when one ends, drops the edge's contributions unless a newer stream of
// the same edge is open (a quiet edge's contributions also expire).
func (s *ScoreService) StreamOpened(edge string) (closed func()) {
	s.mu.Lock()
	if s.streams == nil {
		s.streams = make(map[string]int)
	}
	s.streams[edge]++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.streams[edge]--
		last := s.streams[edge] == 0
		if last {
			delete(s.streams, edge)
			delete(s.reporting, edge)
		}
		s.mu.Unlock()
		if last {
			s.merger.RemoveEdge(edge)
		}
	}
}

// Observed implements EdgeCallbacks: it feeds one edge's batch to the merger and keeps
// the probe results of the providers that edge owns.
func (s *ScoreService) Observed(edge string, b *berryv1.ObservationBatch) {
	obs := make([]fleetscore.Observation[config.BackendKey], len(b.GetBackends()))
	for i, o := range b.GetBackends() {
		obs[i] = fleetscore.Observation[config.BackendKey]{
			Backend: config.BackendKey{Provider: o.GetProvider(), Model: o.GetUpstreamModel()},
			Latency: o.GetLatencySeconds(), TTFT: o.GetTtftSeconds(),
			Samples: o.GetSamples(), Requests: o.GetRequests(),
			ClientErrors: o.GetClientErrors(), ServerErrors: o.GetServerErrors(), NoAnswer: o.GetNoAnswer(),
		}
	}
	s.mu.Lock()
	if s.streams[edge] > 0 {
		if s.reporting == nil {
			s.reporting = make(map[string]bool)
		}
		s.reporting[edge] = true
	}
	for i, o := range b.GetBackends() {
		// Only the probe owner's results are shared: the others do not probe.
		if s.owners[o.GetProvider()] == edge {
			if s.probes == nil {
				s.probes = make(map[config.BackendKey]bool)
			}
			s.probes[obs[i].Backend] = o.GetProbeHealthy()
		}
	}
	s.mu.Unlock()
	s.merger.Observe(edge, time.Now(), obs)
	s.batches.Add(1)
	s.observed.Add(uint64(len(obs)))
}

// merge turns the merger's scores into the pushed message and re-assigns the probe
// owners. A backend is marked down when its fleet-wide error rate reached
// DownErrorRate over at least the breaker threshold's worth of recent attempts that
// speak to its health: 4xx answers are the clients' doing and count for neither.
func (s *ScoreService) merge(now time.Time) *berryv1.FleetScores {
	epoch, merged := s.merger.Scores(now)
	snap, _ := s.snapshots.Watch()
	minAttempts := float64(config.DefaultCircuitBreakerFailureThreshold)
	if th := snap.GetConfig().GetSettings().GetCircuitBreakerFailureThreshold(); th > 0 {
		minAttempts = float64(th)
	}
	// Probes go to connected edges that report: an id that only opened a stream takes
	// no provider's probes.
	s.mu.Lock()
	connected := slices.Collect(maps.Keys(s.reporting))
	s.mu.Unlock()
	owners := make(map[string]string)
	if len(connected) > 0 {
		for _, p := range snap.GetConfig().GetProviders() {
			owners[p.GetId()] = probeOwner(p.GetId(), connected)
		}
	}
	s.mu.Lock()
	s.owners = owners
	for k := range s.probes {
		if _, ok := merged[k]; !ok {
			delete(s.probes, k) // nobody reports on it any more
		}
	}
	probes := maps.Clone(s.probes)
	s.mu.Unlock()

	out := &berryv1.FleetScores{Epoch: epoch, Instance: s.instance, ProbeOwners: owners,
		ValidSeconds: (5 * s.interval).Seconds(),
		Backends:     make([]*berryv1.BackendScore, 0, len(merged))}
	for k, sc := range merged {
		healthy, probed := probes[k]
		judged := sc.Requests - sc.ClientErrors
		if probed && !healthy && judged >= minAttempts && sc.ErrorRate < DownErrorRate {
			// The fleet's own traffic says the backend serves: one edge's failed probe
			// does not take it out of every edge.
			healthy = true
		}
		out.Backends = append(out.Backends, &berryv1.BackendScore{
			Provider: k.Provider, UpstreamModel: k.Model,
			LatencySeconds: sc.Latency, TtftSeconds: sc.TTFT,
			Weight: sc.Weight, Edges: uint32(sc.Edges),
			ErrorRate: sc.ErrorRate, Requests: sc.Requests,
			ClientErrors: sc.ClientErrors, ServerErrors: sc.ServerErrors, NoAnswer: sc.NoAnswer,
			Down:       judged >= minAttempts && sc.ErrorRate >= DownErrorRate,
			ProbeOwner: owners[k.Provider], Probed: probed, ProbeHealthy: healthy,
		})
	}
	slices.SortFunc(out.Backends, func(a, b *berryv1.BackendScore) int {
		if c := strings.Compare(a.Provider, b.Provider); c != 0 {
			return c
		}
		return strings.Compare(a.UpstreamModel, b.UpstreamModel)
	})
	return out
}

// probeOwner returns the edge that probes provider: the connected edge with the
// highest rendezvous hash, so owners change only for the providers of an edge that
// leaves (or the share a new edge takes), not all at once.
func probeOwner(provider string, edges []string) string {
	best, bestH := "", uint64(0)
	for _, e := range edges {
		h := fnv.New64a()
		h.Write([]byte(e))
		h.Write([]byte{0})
		h.Write([]byte(provider))
		// FNV alone mixes its last bytes poorly into the high bits; finish with
		// splitmix64 so providers spread evenly over edges.
		if v := mix64(h.Sum64()); best == "" || v > bestH {
			best, bestH = e, v
		}
	}
	return best
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
