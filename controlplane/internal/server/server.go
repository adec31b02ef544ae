// Package server implements the control plane's gRPC services: the admin API that
// changes config and the edge API that streams snapshots to edges.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	"github.com/berry-gateway/berry/controlplane/internal/fleet"
	"github.com/berry-gateway/berry/controlplane/internal/snapcache"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Server holds the control plane's state and serves both gRPC services.
type Server struct {
	store *store.Store
	cache snapcache.Cache
	fleet fleet.Registry
	log   *slog.Logger

	health   *health.Server
	writeMu  sync.Mutex // orders commit+publish so edges see versions in order
	done     chan struct{}
	doneOnce sync.Once

	// ScoreInterval is how often fleet scores are merged and pushed (default 1s);
	// ScoreTTL expires an edge's observations when it goes quiet (default 10s). Set
	// before serving.
	ScoreInterval, ScoreTTL time.Duration
	scores                  scoreHub

	berryv1.UnimplementedAdminServiceServer
	berryv1.UnimplementedEdgeServiceServer
}

// New returns a Server on an opened store. Call Load before serving.
func New(st *store.Store, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	h := health.NewServer()
	for _, name := range []string{"", berryv1.AdminService_ServiceDesc.ServiceName, berryv1.EdgeService_ServiceDesc.ServiceName} {
		h.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return &Server{store: st, log: log, done: make(chan struct{}), health: h}
}

// Register adds both services to gs, with the standard health service (for load
// balancers) and server reflection (for grpcurl and other generic clients).
func (s *Server) Register(gs *grpc.Server) {
	berryv1.RegisterAdminServiceServer(gs, s)
	berryv1.RegisterEdgeServiceServer(gs, s)
	healthpb.RegisterHealthServer(gs, s.health)
	reflection.Register(gs)
}

// Load publishes the store's current version, if any, to the snapshot cache.
func (s *Server) Load(ctx context.Context) error {
	v, err := s.store.Current(ctx)
	if err != nil {
		return fmt.Errorf("load current version: %w", err)
	}
	if v != nil {
		s.publish(v)
		s.log.Info("loaded config", "version", v.Version)
	}
	return nil
}

// Bootstrap imports a seed TOML document only when the store is empty.
func (s *Server) Bootstrap(ctx context.Context, doc []byte, source string) error {
	cfg, warnings, err := config.ParseTOML(doc)
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", source, err)
	}
	for _, w := range warnings {
		s.log.Warn("bootstrap import", "source", source, "warning", w)
	}
	v, created, err := s.commit(ctx, store.CommitRequest{
		Config: cfg, Author: "bootstrap", Message: "bootstrap import of " + source, IfEmpty: true,
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

// Shutdown ends every edge stream so that a graceful gRPC stop can finish.
func (s *Server) Shutdown() {
	s.doneOnce.Do(func() {
		s.health.Shutdown() // load balancers stop sending before the streams end
		close(s.done)
	})
}

// Fleet exposes the edge registry (for tests and status RPCs).
func (s *Server) Fleet() *fleet.Registry { return &s.fleet }

func (s *Server) commit(ctx context.Context, req store.CommitRequest) (*berryv1.ConfigVersion, bool, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	v, created, err := s.store.Commit(ctx, req)
	if err != nil {
		return nil, false, err
	}
	if created {
		s.publish(v)
	}
	return v, created, nil
}

func (s *Server) publish(v *berryv1.ConfigVersion) {
	s.cache.Set(&berryv1.Snapshot{Version: v.Version, Config: v.Config, Lineage: s.store.Lineage()})
}

// ImportConfig implements berryv1.AdminServiceServer.
func (s *Server) ImportConfig(ctx context.Context, req *berryv1.ImportConfigRequest) (*berryv1.ImportConfigResponse, error) {
	cfg, warnings, err := config.ParseTOML([]byte(req.GetToml()))
	if err != nil {
		return nil, toStatus(err)
	}
	v, _, err := s.commit(ctx, store.CommitRequest{
		Config: cfg, Author: author(ctx), Message: req.GetMessage(), ExpectedVersion: req.GetExpectedVersion(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("config imported", "version", v.Version, "author", v.Author)
	return &berryv1.ImportConfigResponse{Version: v.Version, Warnings: warnings}, nil
}

// GetConfig implements berryv1.AdminServiceServer.
func (s *Server) GetConfig(ctx context.Context, _ *berryv1.GetConfigRequest) (*berryv1.GetConfigResponse, error) {
	v, err := s.store.Current(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if v == nil {
		return &berryv1.GetConfigResponse{Config: &berryv1.Config{}}, nil
	}
	return &berryv1.GetConfigResponse{Version: v.Version, Config: config.Redact(v.Config)}, nil
}

// GetCurrentVersion implements berryv1.AdminServiceServer.
func (s *Server) GetCurrentVersion(ctx context.Context, _ *berryv1.GetCurrentVersionRequest) (*berryv1.GetCurrentVersionResponse, error) {
	v, err := s.store.Current(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if v == nil {
		return &berryv1.GetCurrentVersionResponse{}, nil
	}
	return &berryv1.GetCurrentVersionResponse{
		Version: v.Version, CreatedAt: v.CreatedAt, Author: v.Author, Message: v.Message,
	}, nil
}

// author names who made a change: the credential's name, never the token.
func author(ctx context.Context) string { return auth.FromContext(ctx).Name }

func toStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err // already a status, e.g. AlreadyExists from a mutation
	}
	switch {
	case errors.Is(err, config.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, store.ErrStale):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, store.ErrNotFound), errors.Is(err, errNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
