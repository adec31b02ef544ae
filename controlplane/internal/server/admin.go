package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	"github.com/berry-gateway/berry/controlplane/internal/configdiff"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// KeyPrefix starts every key the control plane generates, so that a leaked key is
// recognisable to secret scanners and to people.
const KeyPrefix = "sk-berry-"

// ReadMethods are the admin RPCs the read role may call.
var ReadMethods = []string{
	berryv1.AdminService_GetScores_FullMethodName,
	berryv1.AdminService_GetConfig_FullMethodName,
	berryv1.AdminService_GetCurrentVersion_FullMethodName,
	berryv1.AdminService_ExportConfig_FullMethodName,
	berryv1.AdminService_ListProviders_FullMethodName,
	berryv1.AdminService_GetProvider_FullMethodName,
	berryv1.AdminService_ListModels_FullMethodName,
	berryv1.AdminService_GetModel_FullMethodName,
	berryv1.AdminService_ListUsers_FullMethodName,
	berryv1.AdminService_GetUser_FullMethodName,
	berryv1.AdminService_GetSettings_FullMethodName,
	berryv1.AdminService_ListVersions_FullMethodName,
	berryv1.AdminService_GetVersion_FullMethodName,
	berryv1.AdminService_DiffVersions_FullMethodName,
	berryv1.AdminService_FleetStatus_FullMethodName,
}

// errNotFound is wrapped by writes that name an entry that does not exist.
var errNotFound = errors.New("not found")

// update runs one validated read-modify-write as a new version and publishes it.
func (s *Server) update(ctx context.Context, opts *berryv1.WriteOptions, what string, mutate func(*berryv1.Config) error) (*berryv1.ConfigVersion, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	v, err := s.store.Update(ctx, store.UpdateRequest{
		Mutate: func(cfg *berryv1.Config) error {
			if err := mutate(cfg); err != nil {
				return err
			}
			config.Normalize(cfg)
			return config.Validate(cfg)
		},
		Author: auth.FromContext(ctx).Name, Message: cmp.Or(opts.GetMessage(), what),
		ExpectedVersion: opts.GetExpectedVersion(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	s.publish(v)
	s.log.Info("config changed", "version", v.Version, "author", v.Author, "change", what)
	return v, nil
}

// current returns the current version, or an empty version 0.
func (s *Server) current(ctx context.Context) (*berryv1.ConfigVersion, error) {
	v, err := s.store.Current(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if v == nil {
		v = &berryv1.ConfigVersion{Config: &berryv1.Config{}}
	}
	return v, nil
}

// ApplyConfig implements berryv1.AdminServiceServer.
func (s *Server) ApplyConfig(ctx context.Context, req *berryv1.ApplyConfigRequest) (*berryv1.ApplyConfigResponse, error) {
	var (
		cfg      *berryv1.Config
		warnings []string
	)
	switch src := req.GetSource().(type) {
	case *berryv1.ApplyConfigRequest_Toml:
		var err error
		if cfg, warnings, err = config.ParseTOML([]byte(src.Toml)); err != nil {
			return nil, toStatus(err)
		}
	case *berryv1.ApplyConfigRequest_Config:
		cfg = proto.Clone(src.Config).(*berryv1.Config)
	default:
		return nil, status.Error(codes.InvalidArgument, "source: set toml or config")
	}
	v, err := s.update(ctx, req.GetOptions(), "apply config", func(cur *berryv1.Config) error {
		proto.Reset(cur)
		proto.Merge(cur, cfg)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &berryv1.ApplyConfigResponse{Version: v.Version, Warnings: warnings}, nil
}

// ExportConfig implements berryv1.AdminServiceServer.
func (s *Server) ExportConfig(ctx context.Context, req *berryv1.ExportConfigRequest) (*berryv1.ExportConfigResponse, error) {
	if req.GetIncludeSecrets() && auth.FromContext(ctx).Role != auth.RoleAdmin {
		return nil, status.Error(codes.PermissionDenied, "include_secrets needs the admin role")
	}
	v, err := s.version(ctx, req.GetVersion())
	if err != nil {
		return nil, err
	}
	cfg := v.GetConfig()
	if !req.GetIncludeSecrets() {
		cfg = config.Redact(cfg)
	}
	doc, err := config.ExportTOML(cfg)
	if err != nil {
		return nil, toStatus(err)
	}
	return &berryv1.ExportConfigResponse{Version: v.Version, Toml: string(doc)}, nil
}

// version returns version n, or the current one for 0.
func (s *Server) version(ctx context.Context, n uint64) (*berryv1.ConfigVersion, error) {
	if n == 0 {
		return s.current(ctx)
	}
	v, err := s.store.Get(ctx, n)
	if err != nil {
		return nil, toStatus(err)
	}
	return v, nil
}

// ListProviders implements berryv1.AdminServiceServer.
func (s *Server) ListProviders(ctx context.Context, _ *berryv1.ListProvidersRequest) (*berryv1.ListProvidersResponse, error) {
	v, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	return &berryv1.ListProvidersResponse{Version: v.Version, Providers: config.Redact(v.Config).GetProviders()}, nil
}

// GetProvider implements berryv1.AdminServiceServer.
func (s *Server) GetProvider(ctx context.Context, req *berryv1.GetProviderRequest) (*berryv1.GetProviderResponse, error) {
	v, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	p, err := find(config.Redact(v.Config).GetProviders(), "provider", req.GetId())
	if err != nil {
		return nil, err
	}
	return &berryv1.GetProviderResponse{Version: v.Version, Provider: p}, nil
}

// PutProvider implements berryv1.AdminServiceServer.
func (s *Server) PutProvider(ctx context.Context, req *berryv1.PutProviderRequest) (*berryv1.PutProviderResponse, error) {
	p := proto.Clone(req.GetProvider()).(*berryv1.Provider)
	if p == nil || p.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "provider.id: required")
	}
	p.ApiKeySet = false
	v, err := s.update(ctx, req.GetOptions(), "put provider "+p.GetId(), func(cfg *berryv1.Config) error {
		if i := indexOf(cfg.GetProviders(), p.GetId()); i >= 0 {
			old := cfg.Providers[i]
			if p.ApiKey == "" {
				p.ApiKey = old.GetApiKey() // a redacted read written back keeps its key
			}
			keepSecretHeaders(p, old)
			cfg.Providers[i] = p
			return nil
		}
		cfg.Providers = append(cfg.Providers, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &berryv1.PutProviderResponse{Version: v.Version}, nil
}

// keepSecretHeaders restores header values a redacted read replaced with REDACTED.
func keepSecretHeaders(p, old *berryv1.Provider) {
	for k, val := range p.GetHeaders() {
		if val == config.Redacted {
			if ov, ok := old.GetHeaders()[k]; ok {
				p.Headers[k] = ov
			}
		}
	}
}

// DeleteProvider implements berryv1.AdminServiceServer.
func (s *Server) DeleteProvider(ctx context.Context, req *berryv1.DeleteProviderRequest) (*berryv1.DeleteProviderResponse, error) {
	v, err := s.update(ctx, req.GetOptions(), "delete provider "+req.GetId(), func(cfg *berryv1.Config) error {
		return remove(&cfg.Providers, "provider", req.GetId())
	})
	if err != nil {
		return nil, err
	}
	return &berryv1.DeleteProviderResponse{Version: v.Version}, nil
}

// ListModels implements berryv1.AdminServiceServer.
func (s *Server) ListModels(ctx context.Context, _ *berryv1.ListModelsRequest) (*berryv1.ListModelsResponse, error) {
	v, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	return &berryv1.ListModelsResponse{Version: v.Version, Models: v.Config.GetModels()}, nil
}

// GetModel implements berryv1.AdminServiceServer.
func (s *Server) GetModel(ctx context.Context, req *berryv1.GetModelRequest) (*berryv1.GetModelResponse, error) {
	v, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	m, err := find(v.Config.GetModels(), "model", req.GetId())
	if err != nil {
		return nil, err
	}
	return &berryv1.GetModelResponse{Version: v.Version, Model: m}, nil
}

// PutModel implements berryv1.AdminServiceServer.
func (s *Server) PutModel(ctx context.Context, req *berryv1.PutModelRequest) (*berryv1.PutModelResponse, error) {
	m := proto.Clone(req.GetModel()).(*berryv1.Model)
	if m == nil || m.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "model.id: required")
	}
	v, err := s.update(ctx, req.GetOptions(), "put model "+m.GetId(), func(cfg *berryv1.Config) error {
		put(&cfg.Models, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &berryv1.PutModelResponse{Version: v.Version}, nil
}

// DeleteModel implements berryv1.AdminServiceServer.
func (s *Server) DeleteModel(ctx context.Context, req *berryv1.DeleteModelRequest) (*berryv1.DeleteModelResponse, error) {
	v, err := s.update(ctx, req.GetOptions(), "delete model "+req.GetId(), func(cfg *berryv1.Config) error {
		return remove(&cfg.Models, "model", req.GetId())
	})
	if err != nil {
		return nil, err
	}
	return &berryv1.DeleteModelResponse{Version: v.Version}, nil
}

// ListUsers implements berryv1.AdminServiceServer.
func (s *Server) ListUsers(ctx context.Context, _ *berryv1.ListUsersRequest) (*berryv1.ListUsersResponse, error) {
	v, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	return &berryv1.ListUsersResponse{Version: v.Version, Users: config.Redact(v.Config).GetUsers()}, nil
}

// GetUser implements berryv1.AdminServiceServer.
func (s *Server) GetUser(ctx context.Context, req *berryv1.GetUserRequest) (*berryv1.GetUserResponse, error) {
	v, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	u, err := find(config.Redact(v.Config).GetUsers(), "user", req.GetId())
	if err != nil {
		return nil, err
	}
	return &berryv1.GetUserResponse{Version: v.Version, User: u}, nil
}

// PutUser implements berryv1.AdminServiceServer.
func (s *Server) PutUser(ctx context.Context, req *berryv1.PutUserRequest) (*berryv1.PutUserResponse, error) {
	u := proto.Clone(req.GetUser()).(*berryv1.User)
	if u == nil || u.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "user.id: required")
	}
	v, err := s.update(ctx, req.GetOptions(), "put user "+u.GetId(), func(cfg *berryv1.Config) error {
		if i := indexOf(cfg.GetUsers(), u.GetId()); i >= 0 && u.Token == "" && len(u.TokenSha256) == 0 {
			u.TokenSha256 = cfg.Users[i].GetTokenSha256() // a redacted read written back keeps its key
		}
		put(&cfg.Users, u)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &berryv1.PutUserResponse{Version: v.Version}, nil
}

// DeleteUser implements berryv1.AdminServiceServer.
func (s *Server) DeleteUser(ctx context.Context, req *berryv1.DeleteUserRequest) (*berryv1.DeleteUserResponse, error) {
	v, err := s.update(ctx, req.GetOptions(), "delete user "+req.GetId(), func(cfg *berryv1.Config) error {
		return remove(&cfg.Users, "user", req.GetId())
	})
	if err != nil {
		return nil, err
	}
	return &berryv1.DeleteUserResponse{Version: v.Version}, nil
}

// GetSettings implements berryv1.AdminServiceServer.
func (s *Server) GetSettings(ctx context.Context, _ *berryv1.GetSettingsRequest) (*berryv1.GetSettingsResponse, error) {
	v, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	return &berryv1.GetSettingsResponse{Version: v.Version, Settings: v.Config.GetSettings()}, nil
}

// UpdateSettings implements berryv1.AdminServiceServer.
func (s *Server) UpdateSettings(ctx context.Context, req *berryv1.UpdateSettingsRequest) (*berryv1.UpdateSettingsResponse, error) {
	st := proto.Clone(req.GetSettings()).(*berryv1.Settings)
	if st == nil {
		return nil, status.Error(codes.InvalidArgument, "settings: required")
	}
	v, err := s.update(ctx, req.GetOptions(), "update settings", func(cfg *berryv1.Config) error {
		cfg.Settings = st
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &berryv1.UpdateSettingsResponse{Version: v.Version}, nil
}

// ListVersions implements berryv1.AdminServiceServer.
func (s *Server) ListVersions(ctx context.Context, req *berryv1.ListVersionsRequest) (*berryv1.ListVersionsResponse, error) {
	limit := min(int(cmp.Or(req.GetLimit(), 100)), 1000)
	vs, err := s.store.List(ctx, req.GetBefore(), limit)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &berryv1.ListVersionsResponse{Versions: make([]*berryv1.VersionInfo, len(vs))}
	for i, v := range vs {
		out.Versions[i] = &berryv1.VersionInfo{Version: v.Version, CreatedAt: v.CreatedAt, Author: v.Author, Message: v.Message}
	}
	return out, nil
}

// GetVersion implements berryv1.AdminServiceServer.
func (s *Server) GetVersion(ctx context.Context, req *berryv1.GetVersionRequest) (*berryv1.GetVersionResponse, error) {
	if req.GetVersion() == 0 {
		return nil, status.Error(codes.InvalidArgument, "version: required")
	}
	v, err := s.version(ctx, req.GetVersion())
	if err != nil {
		return nil, err
	}
	v.Config = config.Redact(v.Config)
	return &berryv1.GetVersionResponse{Version: v}, nil
}

// DiffVersions implements berryv1.AdminServiceServer.
func (s *Server) DiffVersions(ctx context.Context, req *berryv1.DiffVersionsRequest) (*berryv1.DiffVersionsResponse, error) {
	var a *berryv1.ConfigVersion
	if req.GetFrom() == 0 {
		a = &berryv1.ConfigVersion{} // from nothing
	} else {
		var err error
		if a, err = s.version(ctx, req.GetFrom()); err != nil {
			return nil, err
		}
	}
	b, err := s.version(ctx, req.GetTo())
	if err != nil {
		return nil, err
	}
	return &berryv1.DiffVersionsResponse{From: a.Version, To: b.Version, Changes: configdiff.Changes(a.Config, b.Config)}, nil
}

// Rollback implements berryv1.AdminServiceServer.
func (s *Server) Rollback(ctx context.Context, req *berryv1.RollbackRequest) (*berryv1.RollbackResponse, error) {
	if req.GetToVersion() == 0 {
		return nil, status.Error(codes.InvalidArgument, "to_version: required")
	}
	old, err := s.version(ctx, req.GetToVersion())
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("rollback to version %d", old.Version)
	v, err := s.update(ctx, req.GetOptions(), what, func(cfg *berryv1.Config) error {
		proto.Reset(cfg)
		proto.Merge(cfg, old.Config)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &berryv1.RollbackResponse{Version: v.Version}, nil
}

// CreateKey implements berryv1.AdminServiceServer.
func (s *Server) CreateKey(ctx context.Context, req *berryv1.CreateKeyRequest) (*berryv1.CreateKeyResponse, error) {
	key := newKey()
	id := req.GetUserId()
	if id == "" {
		id = "key-" + randomHex(4)
	}
	u := &berryv1.User{
		Id: id, Name: cmp.Or(req.GetName(), id), TokenSha256: config.HashToken(key), Enabled: true,
		AllowedModels: req.GetAllowedModels(), Tags: req.GetTags(), RateLimit: req.GetRateLimit(),
		ExpiresAt: req.GetExpiresAt(),
	}
	if exp := req.GetExpiresAt(); exp != nil && !exp.AsTime().After(timestamppb.Now().AsTime()) {
		return nil, status.Error(codes.InvalidArgument, "expires_at: must be in the future")
	}
	v, err := s.update(ctx, req.GetOptions(), "create key "+id, func(cfg *berryv1.Config) error {
		if indexOf(cfg.GetUsers(), id) >= 0 {
			return status.Errorf(codes.AlreadyExists, "users.%s: already exists", id)
		}
		cfg.Users = append(cfg.Users, u)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &berryv1.CreateKeyResponse{Version: v.Version, UserId: id, Key: key}, nil
}

// SetKeyEnabled implements berryv1.AdminServiceServer.
func (s *Server) SetKeyEnabled(ctx context.Context, req *berryv1.SetKeyEnabledRequest) (*berryv1.SetKeyEnabledResponse, error) {
	what := "disable key " + req.GetUserId()
	if req.GetEnabled() {
		what = "enable key " + req.GetUserId()
	}
	v, err := s.update(ctx, req.GetOptions(), what, func(cfg *berryv1.Config) error {
		i := indexOf(cfg.GetUsers(), req.GetUserId())
		if i < 0 {
			return fmt.Errorf("users.%s: %w", req.GetUserId(), errNotFound)
		}
		cfg.Users[i].Enabled = req.GetEnabled()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &berryv1.SetKeyEnabledResponse{Version: v.Version}, nil
}

// FleetStatus implements berryv1.AdminServiceServer.
func (s *Server) FleetStatus(ctx context.Context, _ *berryv1.FleetStatusRequest) (*berryv1.FleetStatusResponse, error) {
	v, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	out := &berryv1.FleetStatusResponse{CurrentVersion: v.Version, RolledOut: s.fleet.RolledOut(v.Version)}
	for _, e := range s.fleet.List() {
		out.Edges = append(out.Edges, &berryv1.EdgeStatus{
			EdgeId: e.ID, Address: e.Address, Peer: e.Peer, BuildVersion: e.BuildVersion,
			AppliedVersion: e.AppliedVersion, Connected: e.Connected,
			ConnectedSince: timestamppb.New(e.ConnectedSince), LastSeen: timestamppb.New(e.LastSeen),
			LastAckVersion: e.LastAckVersion, LastNack: e.LastNack,
		})
	}
	return out, nil
}

// newKey returns a fresh gateway API key: the prefix and 256 random bits.
func newKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type entry interface {
	proto.Message
	GetId() string
}

func indexOf[E entry](es []E, id string) int {
	return slices.IndexFunc(es, func(e E) bool { return e.GetId() == id })
}

func find[E entry](es []E, kind, id string) (E, error) {
	if i := indexOf(es, id); i >= 0 {
		return es[i], nil
	}
	var zero E
	return zero, status.Errorf(codes.NotFound, "%s %q not found", kind, id)
}

// put replaces the entry with e's id or appends e.
func put[E entry](es *[]E, e E) {
	if i := indexOf(*es, e.GetId()); i >= 0 {
		(*es)[i] = e
		return
	}
	*es = append(*es, e)
}

func remove[E entry](es *[]E, kind, id string) error {
	i := indexOf(*es, id)
	if i < 0 {
		return fmt.Errorf("%s %q: %w", kind, id, errNotFound)
	}
	*es = slices.Delete(*es, i, i+1)
	return nil
}

// Backup implements berryv1.AdminServiceServer.
func (s *Server) Backup(_ *berryv1.BackupRequest, stream grpc.ServerStreamingServer[berryv1.BackupResponse]) error {
	w := &chunkWriter{send: func(b []byte) error { return stream.Send(&berryv1.BackupResponse{Data: b}) }}
	n, err := s.store.Backup(stream.Context(), w)
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		return toStatus(err)
	}
	s.log.Info("backup sent", "bytes", n, "by", auth.FromContext(stream.Context()).Name)
	return nil
}

// chunkWriter cuts a byte stream into messages well under gRPC's 4 MiB default.
type chunkWriter struct {
	buf  []byte
	send func([]byte) error
}

const chunkSize = 1 << 20

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		take := min(chunkSize-len(w.buf), len(p))
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
		if len(w.buf) == chunkSize {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.send(w.buf)
	w.buf = w.buf[:0]
	return err
}
