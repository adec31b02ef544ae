// Package server implements the control plane's gRPC services: the admin API that
// changes config (AdminService), the edge API that streams snapshots and fleet scores
// to edges (EdgeService), and the merge of the edges' observations into those scores
// (ScoreService). The services share nothing but the caches they publish to and read
// from; Server wires them together.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	"github.com/berry-gateway/berry/controlplane/internal/cache"
	"github.com/berry-gateway/berry/controlplane/internal/cluster"
	"github.com/berry-gateway/berry/controlplane/internal/fleet"
	"github.com/berry-gateway/berry/controlplane/internal/scorehistory"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Options tunes New. The zero value is usable.
type Options struct {
	// Log receives the services' logs (default slog.Default()).
	Log *slog.Logger
	// ScoreInterval is how often fleet scores are merged and pushed (default
	// DefaultScoreInterval).
	ScoreInterval time.Duration
	// ScoreTTL expires an edge's observations when it goes quiet (default 10s).
	ScoreTTL time.Duration
	// EdgeExpiry is how long FleetStatus keeps listing an edge after its stream
	// closed; 0 keeps every edge. The binary's default is DefaultEdgeExpiry.
	EdgeExpiry time.Duration
	// Registry receives the control plane's metrics (default: a registry of its
	// own); the binary adds the Go runtime's, the process's and its build's to it.
	Registry *prometheus.Registry
	// QuotaInterval is how often quota credit is computed and pushed to edges
	// (default DefaultQuotaInterval); UsageFlushInterval how often the usage ledger
	// and quota counters are written (default DefaultUsageFlushInterval).
	QuotaInterval, UsageFlushInterval time.Duration
	// ScoreHistoryInterval is how often the fleet scores are sampled for
	// GetScoreHistory, which keeps an hour of them (default
	// scorehistory.DefaultInterval).
	ScoreHistoryInterval time.Duration
}

// DefaultEdgeExpiry is berry-controlplane's default for Options.EdgeExpiry: long
// enough to see an edge that went away overnight, short enough that edges named
// after pods do not pile up.
const DefaultEdgeExpiry = 24 * time.Hour

// Server is the control plane: the admin, edge and fleet-score services over one
// store, wired through the snapshot and score caches.
type Server struct {
	cluster    *clusterState // nil: one node
	clusterSvc *ClusterService
	admin      *AdminService
	edge       *EdgeService
	scoring    *ScoreService
	quota      *QuotaService
	relay      *relay // a cluster member's link to the leader; nil on one node
	health     *health.Server
	log        *slog.Logger
	reg        *prometheus.Registry
	metrics    *metrics

	mu     sync.Mutex
	cancel context.CancelFunc // stops the score loop
	loop   sync.WaitGroup
}

// New returns a Server on an opened store. Call Load before serving and Start to run
// the fleet-score loop; NewGRPCServer returns the gRPC server that serves it.
func New(st *store.Store, opts Options) *Server {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	var (
		snapshots cache.Snapshots
		scores    cache.Scores
	)
	edges := &fleet.Registry{Expiry: opts.EdgeExpiry}
	scoring := NewScoreService(&snapshots, &scores, opts.ScoreInterval, opts.ScoreTTL)
	h := health.NewServer()
	for _, name := range []string{"", berryv1.AdminService_ServiceDesc.ServiceName, berryv1.EdgeService_ServiceDesc.ServiceName} {
		h.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	quotas := NewQuotaService(st, &snapshots, QuotaOptions{Interval: opts.QuotaInterval, FlushInterval: opts.UsageFlushInterval, Log: log})
	s := &Server{
		admin:   NewAdminService(st, &snapshots, &scores, edges, log),
		edge:    NewEdgeService(st.Lineage, &snapshots, &scores, edges, scoring, log),
		scoring: scoring,
		quota:   quotas,
		health:  h,
		log:     log,
		reg:     opts.Registry,
	}
	s.edge.quotas = quotas
	s.admin.quota = quotas
	s.clusterSvc = &ClusterService{quota: quotas, scores: &scores, callbacks: scoring, log: log}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	s.metrics = newMetrics(s.reg, s)
	s.reg.MustRegister(quotaCollector{q: quotas, e: s.edge})
	s.admin.metrics = s.metrics
	s.admin.history = scorehistory.New(opts.ScoreHistoryInterval, scorehistory.DefaultSpan)
	return s
}

// Registry returns the registry holding the control plane's metrics, for the
// metrics endpoint to gather.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Start runs the fleet-score loop, the quota loop and the score history's sampler
// until ctx ends or Shutdown is called: scores are merged and pushed from the start,
// whether or not an edge has connected yet; quota credit is granted, and usage
// written, once the quota counters are read back from the store, and what is left is
// written when the loop stops.
func (s *Server) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return // already started
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.loop.Go(func() { s.scoring.Run(ctx) })
	s.loop.Go(func() { s.quota.Run(ctx) })
	s.loop.Go(func() { s.admin.sampleScores(ctx) })
	if s.cluster != nil {
		s.loop.Go(func() { s.relay.run(ctx) })
		s.loop.Go(func() { s.watchRemoval(ctx) })
	}
}

// Load publishes the store's current version, if any, to the snapshot cache.
func (s *Server) Load(ctx context.Context) error {
	v, err := s.admin.load(ctx)
	if err != nil {
		return fmt.Errorf("load current version: %w", err)
	}
	if v != nil {
		s.log.Info("loaded config", "version", v.Version)
	}
	return nil
}

// bootstrapAuthor is who a bootstrap import's version names as its author.
var bootstrapAuthor = auth.Identity{Name: "bootstrap", Role: auth.RoleAdmin}

// Bootstrap imports a seed TOML document only when the store is empty.
func (s *Server) Bootstrap(ctx context.Context, doc []byte, source string) error {
	cfg, warnings, err := config.ParseTOML(doc)
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", source, err)
	}
	for _, w := range warnings {
		s.log.Warn("bootstrap import", "source", source, "warning", w)
	}
	v, created, err := s.admin.write(auth.NewContext(ctx, bootstrapAuthor), change{
		what: "bootstrap import of " + source, mutate: replaceWith(cfg), ifEmpty: true,
	})
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", source, err)
	}
	if created {
		s.log.Info("bootstrap config imported", "source", source, "version", v.Version)
	} else {
		s.log.Info("store not empty, bootstrap file ignored", "source", source, "version", v.Version)
	}
	return nil
}

// Drain stops gs in the order that lets clients move elsewhere without failed calls.
// The health service reports NOT_SERVING at once while every service goes on serving
// for delay, so that load balancers see it and send new calls elsewhere; then the
// edge streams end (edges reconnect: through the balancer to another control plane,
// or to this one once it is back) and the score loop stops; then gs stops
// gracefully, letting calls in flight finish for at most timeout before it closes
// what is left. An end of ctx cuts the delay and the wait short.
func (s *Server) Drain(ctx context.Context, gs *grpc.Server, delay, timeout time.Duration) {
	s.health.Shutdown()
	if delay > 0 {
		s.log.Info("draining: health reports NOT_SERVING; still serving until the shutdown delay ends", "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	s.log.Info("ending edge streams")
	s.Shutdown()
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-stopped:
		return
	case <-t.C:
		s.log.Warn("calls still running after the graceful stop's wait; closing them", "wait", timeout)
	case <-ctx.Done():
	}
	gs.Stop()
	<-stopped
}

// Shutdown ends every edge stream, so that a graceful gRPC stop can finish, and stops
// the score loop and the quota loop, which writes the usage not yet written. Drain
// calls it after its delay.
func (s *Server) Shutdown() {
	s.health.Shutdown() // load balancers stop sending before the streams end
	s.edge.Shutdown()
	s.mu.Lock()
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	s.loop.Wait()
	if s.cluster != nil {
		s.cluster.close()
	}
}

// toStatus turns an error of the store or of a change into the status an RPC
// returns, its message on one line.
func toStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err // already a status, e.g. AlreadyExists from a mutation
	}
	code := codes.Internal
	switch {
	case errors.Is(err, config.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, cluster.ErrLeadershipLost):
		code = codes.Unavailable
	case errors.Is(err, store.ErrStale):
		code = codes.FailedPrecondition
	case errors.Is(err, store.ErrNotFound), errors.Is(err, errNotFound):
		code = codes.NotFound
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, config.OneLine(err.Error()))
}
