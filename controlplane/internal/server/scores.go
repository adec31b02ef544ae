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

	"github.com/berry-gateway/berry/controlplane/internal/fleetscore"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// Fleet-score defaults.
const (
	DefaultScoreInterval = time.Second
	// DownErrorRate is the merged error rate at which a backend is marked down for
	// the whole fleet, once the fleet's recent attempts reach the breaker threshold.
	DownErrorRate           = 0.5
	defaultBreakerThreshold = 5
)

// scoreHub holds the latest merged scores and wakes every edge stream when they change.
type scoreHub struct {
	once     sync.Once
	instance string
	merger   fleetscore.Merger
	observed atomic.Uint64 // backend observations absorbed

	mu      sync.Mutex
	latest  *berryv1.FleetScores
	changed chan struct{}
	owners  map[string]string // provider id → probing edge, as last pushed
	streams map[string]int    // edge id → open Sync streams (a reconnect overlaps the old one)
	probes  map[string]bool   // backend key → the owner's last probe result
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

// key is the merger's backend key: provider id and upstream model.
func scoreKey(provider, model string) string { return provider + "\x00" + model }

func splitKey(k string) (provider, model string) {
	provider, model, _ = strings.Cut(k, "\x00")
	return provider, model
}

func (h *scoreHub) watch() (*berryv1.FleetScores, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.changed == nil {
		h.changed = make(chan struct{})
	}
	return h.latest, h.changed
}

func (h *scoreHub) set(s *berryv1.FleetScores) {
	h.mu.Lock()
	h.latest = s
	if h.changed != nil {
		close(h.changed)
	}
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

// startScores starts the merge loop once, with the first edge stream.
func (s *Server) startScores() {
	s.scores.once.Do(func() {
		var b [8]byte
		_, _ = rand.Read(b[:])
		s.scores.instance = hex.EncodeToString(b[:])
		if s.ScoreTTL > 0 {
			s.scores.merger.TTL = s.ScoreTTL
		}
		go s.runScores()
	})
}

func (s *Server) runScores() {
	iv := s.ScoreInterval
	if iv <= 0 {
		iv = DefaultScoreInterval
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.scores.set(s.mergeScores(now))
		}
	}
}

// mergeScores turns the merger's scores into the pushed message, marking down every
// backend whose fleet-wide error rate crossed DownErrorRate over at least the breaker
// threshold's worth of recent attempts.
func (s *Server) mergeScores(now time.Time) *berryv1.FleetScores {
	epoch, merged := s.scores.merger.Scores(now)
	minReq := float64(defaultBreakerThreshold)
	if snap, _ := s.cache.Watch(); snap != nil {
		if th := snap.GetConfig().GetSettings().GetCircuitBreakerFailureThreshold(); th > 0 {
			minReq = float64(th)
		}
	}
	var connected []string
	for _, e := range s.fleet.List() {
		if e.Connected {
			connected = append(connected, e.ID)
		}
	}
	owners := make(map[string]string)
	if snap, _ := s.cache.Watch(); snap != nil && len(connected) > 0 {
		for _, p := range snap.GetConfig().GetProviders() {
			owners[p.GetId()] = probeOwner(p.GetId(), connected)
		}
	}
	s.scores.mu.Lock()
	s.scores.owners = owners
	for k := range s.scores.probes {
		if _, ok := merged[k]; !ok {
			delete(s.scores.probes, k) // nobody reports on it any more
		}
	}
	probes := maps.Clone(s.scores.probes)
	s.scores.mu.Unlock()

	iv := s.ScoreInterval
	if iv <= 0 {
		iv = DefaultScoreInterval
	}
	out := &berryv1.FleetScores{Epoch: epoch, Instance: s.scores.instance, ProbeOwners: owners,
		ValidSeconds: (5 * iv).Seconds(),
		Backends:     make([]*berryv1.BackendScore, 0, len(merged))}
	for k, sc := range merged {
		p, m := splitKey(k)
		healthy, probed := probes[k]
		out.Backends = append(out.Backends, &berryv1.BackendScore{
			Provider: p, UpstreamModel: m,
			LatencySeconds: sc.Latency, TtftSeconds: sc.TTFT,
			Weight: sc.Weight, Edges: uint32(sc.Edges),
			ErrorRate: sc.ErrorRate, Requests: sc.Requests,
			Down:       sc.Requests >= minReq && sc.ErrorRate >= DownErrorRate,
			ProbeOwner: owners[p], Probed: probed, ProbeHealthy: healthy,
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

// streamOpened counts an edge's stream; the returned func, called when it ends, drops
// the edge's contributions unless a newer stream of the same edge is open.
func (h *scoreHub) streamOpened(edge string) (closed func()) {
	h.mu.Lock()
	if h.streams == nil {
		h.streams = make(map[string]int)
	}
	h.streams[edge]++
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		h.streams[edge]--
		last := h.streams[edge] == 0
		if last {
			delete(h.streams, edge)
		}
		h.mu.Unlock()
		if last {
			h.merger.RemoveEdge(edge)
		}
	}
}

// observe feeds one edge's batch to the merger.
func (s *Server) observe(edge string, b *berryv1.ObservationBatch) {
	obs := make([]fleetscore.Observation, len(b.GetBackends()))
	s.scores.mu.Lock()
	for _, o := range b.GetBackends() {
		// Only the probe owner's results are shared: the others do not probe.
		if s.scores.owners[o.GetProvider()] == edge {
			if s.scores.probes == nil {
				s.scores.probes = make(map[string]bool)
			}
			s.scores.probes[scoreKey(o.GetProvider(), o.GetUpstreamModel())] = o.GetProbeHealthy()
		}
	}
	s.scores.mu.Unlock()
	for i, o := range b.GetBackends() {
		obs[i] = fleetscore.Observation{
			Backend: scoreKey(o.GetProvider(), o.GetUpstreamModel()),
			Latency: o.GetLatencySeconds(), TTFT: o.GetTtftSeconds(),
			Samples: o.GetSamples(), Requests: o.GetRequests(), Errors: o.GetServerErrors() + o.GetNoAnswer(),
		}
	}
	s.scores.merger.Observe(edge, time.Now(), obs)
	s.scores.observed.Add(uint64(len(obs)))
}

// GetScores implements berryv1.AdminServiceServer: the last merged scores, optionally
// only the backends of one model.
func (s *Server) GetScores(_ context.Context, req *berryv1.GetScoresRequest) (*berryv1.GetScoresResponse, error) {
	latest, _ := s.scores.watch()
	resp := &berryv1.GetScoresResponse{}
	if latest == nil {
		return resp, nil
	}
	resp.Epoch = latest.GetEpoch()
	var want map[string]bool
	if m := req.GetModel(); m != "" {
		want = map[string]bool{}
		if snap, _ := s.cache.Watch(); snap != nil {
			for _, mod := range snap.GetConfig().GetModels() {
				if mod.GetId() != m && mod.GetName() != m {
					continue
				}
				for _, b := range mod.GetBackends() {
					want[scoreKey(b.GetProvider(), b.GetModel())] = true
				}
			}
		}
	}
	for _, b := range latest.GetBackends() {
		if want == nil || want[scoreKey(b.GetProvider(), b.GetUpstreamModel())] {
			resp.Backends = append(resp.Backends, b)
		}
	}
	return resp, nil
}
