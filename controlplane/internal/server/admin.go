package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	"github.com/berry-gateway/berry/controlplane/internal/cache"
	"github.com/berry-gateway/berry/controlplane/internal/configdiff"
	"github.com/berry-gateway/berry/controlplane/internal/fleet"
	"github.com/berry-gateway/berry/controlplane/internal/scorehistory"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/buildinfo"
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
	berryv1.AdminService_ValidateConfig_FullMethodName,
	berryv1.AdminService_GetServerInfo_FullMethodName,
	berryv1.AdminService_GetUsage_FullMethodName,
	berryv1.AdminService_GetQuotas_FullMethodName,
	berryv1.AdminService_GetScoreHistory_FullMethodName,
	berryv1.ClusterService_ClusterStatus_FullMethodName,
}

// errNotFound is wrapped by writes that name an entry that does not exist.
var errNotFound = errors.New("not found")

// AdminService implements berryv1.AdminServiceServer: config reads and writes, version
// history, keys, fleet status, scores and backups. Every config change goes through
// write, the one path into the store, and is published to the snapshot cache.
type AdminService struct {
	store     *store.Store
	snapshots *cache.Snapshots // published on every write; read for GetScores's model filter
	scores    *cache.Scores    // read by GetScores
	fleet     *fleet.Registry  // read by FleetStatus
	log       *slog.Logger
	metrics   *metrics           // nil: not measured
	quota     *QuotaService      // read by GetQuotas; nil: no quota state
	history   *scorehistory.Ring // sampled from scores by sampleScores; read by GetScoreHistory
	cluster   *clusterState      // nil: one node, writes go to the store

	writeMu sync.Mutex // orders write+publish so edges see versions in order

	berryv1.UnimplementedAdminServiceServer
}

// NewAdminService returns the admin service on st, publishing every new version to
// snapshots; scores and edges are read for GetScores and FleetStatus.
func NewAdminService(st *store.Store, snapshots *cache.Snapshots, scores *cache.Scores, edges *fleet.Registry, log *slog.Logger) *AdminService {
	if log == nil {
		log = slog.Default()
	}
	return &AdminService{store: st, snapshots: snapshots, scores: scores, fleet: edges, log: log,
		history: scorehistory.New(scorehistory.DefaultInterval, scorehistory.DefaultSpan)}
}

// change is one write of the config.
type change struct {
	// what names the change: logged, and the version's message unless opts has one.
	what string
	opts *berryv1.WriteOptions
	// mutate edits a private copy of the current config (empty on an empty store); the
	// result is normalized and validated before it is stored.
	mutate func(*berryv1.Config) error
	// ifEmpty makes the write a no-op when the store already holds a version
	// (bootstrap).
	ifEmpty bool
}

// write is the one path by which the config changes: one validated read-modify-write
// in one store transaction, authored by the caller in ctx, then published. created is
// false when ifEmpty found a version (which is returned). Errors are the store's and
// mutate's, not yet gRPC statuses.
func (a *AdminService) write(ctx context.Context, c change) (v *berryv1.ConfigVersion, created bool, err error) {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	author := auth.FromContext(ctx).Name
	start := time.Now()
	req := store.UpdateRequest{
		Mutate: func(cfg *berryv1.Config) error {
			if err := c.mutate(cfg); err != nil {
				return err
			}
			return prepare(cfg)
		},
		Author: author, Message: cmp.Or(c.opts.GetMessage(), c.what),
		ExpectedVersion: c.opts.GetExpectedVersion(), IfEmpty: c.ifEmpty,
	}
	if a.cluster == nil {
		v, created, err = a.store.Update(ctx, req)
	} else {
		v, created, err = a.replicate(ctx, req)
	}
	a.metrics.observeUpdate(updateResult(created, err), time.Since(start))
	if err != nil {
		a.logFailed(c, author, err)
		return nil, false, err
	}
	if !created {
		return v, false, nil
	}
	a.publish(v)
	a.log.Info("config changed", "version", v.Version, "author", v.Author, "change", c.what)
	return v, true, nil
}

// replicate is write's path on a cluster: the leader prepares the next version from
// its applied state (which holds every committed entry: see cluster.Node) and
// proposes it; it is stored, on every member, once a majority holds it. A member
// that does not lead has the call forwarded to the leader.
func (a *AdminService) replicate(ctx context.Context, req store.UpdateRequest) (*berryv1.ConfigVersion, bool, error) {
	if !a.cluster.replica.Leading() {
		return nil, false, a.cluster.notLeader(ctx)
	}
	v, created, err := a.store.Prepare(ctx, req)
	if err != nil || !created {
		return v, created, err
	}
	if err := a.cluster.replica.Apply(ctx, &berryv1.RaftEntry{Entry: &berryv1.RaftEntry_Version{Version: v}}); err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// prepare brings a config into the form it is stored in and checks it: what every
// write does to its result, and what a dry run does to the config it is given.
func prepare(cfg *berryv1.Config) error {
	config.Normalize(cfg)
	return config.Validate(cfg)
}

// updateResult names the outcome of a store update for its latency metric.
func updateResult(created bool, err error) string {
	switch {
	case err == nil && created:
		return updateCommitted
	case err == nil:
		return updateUnchanged
	case status.Code(toStatus(err)) == codes.Internal:
		return updateFailed
	}
	return updateRefused
}

// logFailed logs a write that did not happen. A failure of the control plane itself
// (a full disk, an I/O error) is an error, with its cause; a write refused for what
// the request asked (invalid, stale, naming what does not exist) is logged with its
// code only, as validation messages may quote what the request carried.
func (a *AdminService) logFailed(c change, author string, err error) {
	code := status.Code(toStatus(err))
	if code == codes.Internal {
		a.log.Error("config write failed", "change", c.what, "author", author, "err", err)
		return
	}
	a.log.Info("config write refused", "change", c.what, "author", author, "code", code.String())
}

// load publishes the store's current version, if any.
func (a *AdminService) load(ctx context.Context) (*berryv1.ConfigVersion, error) {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	v, err := a.store.Current(ctx)
	if err != nil || v == nil {
		return nil, err
	}
	a.publish(v)
	return v, nil
}

func (a *AdminService) publish(v *berryv1.ConfigVersion) {
	a.snapshots.Set(&berryv1.Snapshot{Version: v.Version, Config: v.Config, Lineage: a.store.Lineage(),
		ContentHash: config.ContentHash(v.Config)})
}

// replaceWith is a mutation that makes the whole config cfg.
func replaceWith(cfg *berryv1.Config) func(*berryv1.Config) error {
	return func(cur *berryv1.Config) error {
		proto.Reset(cur)
		proto.Merge(cur, cfg)
		return nil
	}
}

// ImportConfig implements berryv1.AdminServiceServer.
func (a *AdminService) ImportConfig(ctx context.Context, req *berryv1.ImportConfigRequest) (*berryv1.ImportConfigResponse, error) {
	cfg, warnings, err := config.ParseTOML([]byte(req.GetToml()))
	if err != nil {
		return nil, toStatus(err)
	}
	opts := &berryv1.WriteOptions{Message: req.GetMessage(), ExpectedVersion: req.GetExpectedVersion()}
	v, _, err := a.write(ctx, change{what: "import config", opts: opts, mutate: replaceWith(cfg)})
	if err != nil {
		return nil, toStatus(err)
	}
	return &berryv1.ImportConfigResponse{Version: v.Version, Warnings: warnings}, nil
}

// GetConfig implements berryv1.AdminServiceServer.
func (a *AdminService) GetConfig(ctx context.Context, _ *berryv1.GetConfigRequest) (*berryv1.GetConfigResponse, error) {
	v, err := a.store.Current(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if v == nil {
		return &berryv1.GetConfigResponse{Config: &berryv1.Config{}}, nil
	}
	return &berryv1.GetConfigResponse{Version: v.Version, Config: config.Redact(v.Config)}, nil
}

// GetCurrentVersion implements berryv1.AdminServiceServer.
func (a *AdminService) GetCurrentVersion(ctx context.Context, _ *berryv1.GetCurrentVersionRequest) (*berryv1.GetCurrentVersionResponse, error) {
	v, err := a.store.Current(ctx)
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

// GetScores implements berryv1.AdminServiceServer: the last merged scores, optionally
// only the backends of one model.
func (a *AdminService) GetScores(_ context.Context, req *berryv1.GetScoresRequest) (*berryv1.GetScoresResponse, error) {
	latest, _ := a.scores.Watch()
	resp := &berryv1.GetScoresResponse{}
	if latest == nil {
		return resp, nil
	}
	resp.Epoch = latest.GetEpoch()
	var want map[config.BackendKey]bool
	if m := req.GetModel(); m != "" {
		want = a.backendsOf(m)
	}
	for _, b := range latest.GetBackends() {
		if want == nil || want[config.BackendKey{Provider: b.GetProvider(), Model: b.GetUpstreamModel()}] {
			resp.Backends = append(resp.Backends, b)
		}
	}
	return resp, nil
}

// current returns the current version, or an empty version 0.
func (a *AdminService) current(ctx context.Context) (*berryv1.ConfigVersion, error) {
	v, err := a.store.Current(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if v == nil {
		v = &berryv1.ConfigVersion{Config: &berryv1.Config{}}
	}
	return v, nil
}

// requestedConfig returns the config a whole-config request carries as seed TOML or
// in proto form (a copy of it), with the TOML importer's warnings.
func requestedConfig(source any) (*berryv1.Config, []string, error) {
	switch src := source.(type) {
	case *berryv1.ApplyConfigRequest_Toml:
		return config.ParseTOML([]byte(src.Toml))
	case *berryv1.ValidateConfigRequest_Toml:
		return config.ParseTOML([]byte(src.Toml))
	case *berryv1.ApplyConfigRequest_Config:
		return proto.Clone(src.Config).(*berryv1.Config), nil, nil
	case *berryv1.ValidateConfigRequest_Config:
		return proto.Clone(src.Config).(*berryv1.Config), nil, nil
	}
	return nil, nil, status.Error(codes.InvalidArgument, "source: set toml or config")
}

// ApplyConfig implements berryv1.AdminServiceServer.
func (a *AdminService) ApplyConfig(ctx context.Context, req *berryv1.ApplyConfigRequest) (*berryv1.ApplyConfigResponse, error) {
	cfg, warnings, err := requestedConfig(req.GetSource())
	if err != nil {
		return nil, toStatus(err)
	}
	v, _, err := a.write(ctx, change{what: "apply config", opts: req.GetOptions(), mutate: replaceWith(cfg)})
	if err != nil {
		return nil, toStatus(err)
	}
	return &berryv1.ApplyConfigResponse{Version: v.Version, Warnings: warnings}, nil
}

// ValidateConfig implements berryv1.AdminServiceServer: ApplyConfig's checks and the
// changes it would make, with nothing written. The config goes through what a write
// does to it (prepare), so a dry run accepts exactly what the write would, and the
// changes are those the write would record.
func (a *AdminService) ValidateConfig(ctx context.Context, req *berryv1.ValidateConfigRequest) (*berryv1.ValidateConfigResponse, error) {
	cfg, warnings, err := requestedConfig(req.GetSource())
	if err == nil {
		err = prepare(cfg)
	}
	if err != nil && !errors.Is(err, config.ErrInvalid) {
		return nil, toStatus(err)
	}
	cur, cerr := a.current(ctx)
	if cerr != nil {
		return nil, cerr
	}
	if exp := req.GetExpectedVersion(); exp != 0 && exp != cur.Version {
		return nil, toStatus(fmt.Errorf("%w (based on %d, current is %d)", store.ErrStale, exp, cur.Version))
	}
	resp := &berryv1.ValidateConfigResponse{Warnings: warnings, CurrentVersion: cur.Version}
	if err != nil {
		resp.Errors = fieldErrors(err)
		return resp, nil
	}
	resp.Valid = true
	resp.Changes = configdiff.Changes(cur.Config, cfg)
	return resp, nil
}

// fieldErrors lists the problems of an invalid config (err wraps config.ErrInvalid).
func fieldErrors(err error) []*berryv1.FieldError {
	if ve, ok := errors.AsType[*config.ValidationError](err); ok {
		out := make([]*berryv1.FieldError, len(ve.Errors))
		for i, fe := range ve.Errors {
			out[i] = &berryv1.FieldError{Path: fe.Path, Message: fe.Msg}
		}
		return out
	}
	// A document that does not parse: ParseTOML wraps the TOML parser's error, which
	// names the line.
	msg := strings.TrimPrefix(err.Error(), config.ErrInvalid.Error()+": ")
	return []*berryv1.FieldError{{Message: config.OneLine(msg)}}
}

// GetServerInfo implements berryv1.AdminServiceServer.
func (a *AdminService) GetServerInfo(context.Context, *berryv1.GetServerInfoRequest) (*berryv1.GetServerInfoResponse, error) {
	b := buildinfo.Get()
	return &berryv1.GetServerInfoResponse{Version: b.Version, Revision: b.Revision, Modified: b.Modified,
		GoVersion: b.GoVersion, Lineage: a.store.Lineage()}, nil
}

// ExportConfig implements berryv1.AdminServiceServer.
func (a *AdminService) ExportConfig(ctx context.Context, req *berryv1.ExportConfigRequest) (*berryv1.ExportConfigResponse, error) {
	if req.GetIncludeSecrets() && auth.FromContext(ctx).Role != auth.RoleAdmin {
		return nil, status.Error(codes.PermissionDenied, "include_secrets needs the admin role")
	}
	v, err := a.version(ctx, req.GetVersion())
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
func (a *AdminService) version(ctx context.Context, n uint64) (*berryv1.ConfigVersion, error) {
	if n == 0 {
		return a.current(ctx)
	}
	v, err := a.store.Get(ctx, n)
	if err != nil {
		return nil, toStatus(err)
	}
	return v, nil
}

// ListProviders implements berryv1.AdminServiceServer.
func (a *AdminService) ListProviders(ctx context.Context, _ *berryv1.ListProvidersRequest) (*berryv1.ListProvidersResponse, error) {
	v, err := a.current(ctx)
	if err != nil {
		return nil, err
	}
	return &berryv1.ListProvidersResponse{Version: v.Version, Providers: config.Redact(v.Config).GetProviders()}, nil
}

// GetProvider implements berryv1.AdminServiceServer.
func (a *AdminService) GetProvider(ctx context.Context, req *berryv1.GetProviderRequest) (*berryv1.GetProviderResponse, error) {
	v, err := a.current(ctx)
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
func (a *AdminService) PutProvider(ctx context.Context, req *berryv1.PutProviderRequest) (*berryv1.PutProviderResponse, error) {
	p := proto.Clone(req.GetProvider()).(*berryv1.Provider)
	if p == nil || p.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "provider.id: required")
	}
	p.ApiKeySet = false
	v, _, err := a.write(ctx, change{what: "put provider " + p.GetId(), opts: req.GetOptions(), mutate: func(cfg *berryv1.Config) error {
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
	}})
	if err != nil {
		return nil, toStatus(err)
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
func (a *AdminService) DeleteProvider(ctx context.Context, req *berryv1.DeleteProviderRequest) (*berryv1.DeleteProviderResponse, error) {
	v, _, err := a.write(ctx, change{what: "delete provider " + req.GetId(), opts: req.GetOptions(), mutate: func(cfg *berryv1.Config) error {
		return remove(&cfg.Providers, "provider", req.GetId())
	}})
	if err != nil {
		return nil, toStatus(err)
	}
	return &berryv1.DeleteProviderResponse{Version: v.Version}, nil
}

// ListModels implements berryv1.AdminServiceServer.
func (a *AdminService) ListModels(ctx context.Context, _ *berryv1.ListModelsRequest) (*berryv1.ListModelsResponse, error) {
	v, err := a.current(ctx)
	if err != nil {
		return nil, err
	}
	return &berryv1.ListModelsResponse{Version: v.Version, Models: v.Config.GetModels()}, nil
}

// GetModel implements berryv1.AdminServiceServer.
func (a *AdminService) GetModel(ctx context.Context, req *berryv1.GetModelRequest) (*berryv1.GetModelResponse, error) {
	v, err := a.current(ctx)
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
func (a *AdminService) PutModel(ctx context.Context, req *berryv1.PutModelRequest) (*berryv1.PutModelResponse, error) {
	m := proto.Clone(req.GetModel()).(*berryv1.Model)
	if m == nil || m.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "model.id: required")
	}
	v, _, err := a.write(ctx, change{what: "put model " + m.GetId(), opts: req.GetOptions(), mutate: func(cfg *berryv1.Config) error {
		put(&cfg.Models, m)
		return nil
	}})
	if err != nil {
		return nil, toStatus(err)
	}
	return &berryv1.PutModelResponse{Version: v.Version}, nil
}

// DeleteModel implements berryv1.AdminServiceServer.
func (a *AdminService) DeleteModel(ctx context.Context, req *berryv1.DeleteModelRequest) (*berryv1.DeleteModelResponse, error) {
	v, _, err := a.write(ctx, change{what: "delete model " + req.GetId(), opts: req.GetOptions(), mutate: func(cfg *berryv1.Config) error {
		return remove(&cfg.Models, "model", req.GetId())
	}})
	if err != nil {
		return nil, toStatus(err)
	}
	return &berryv1.DeleteModelResponse{Version: v.Version}, nil
}

// ListUsers implements berryv1.AdminServiceServer.
func (a *AdminService) ListUsers(ctx context.Context, _ *berryv1.ListUsersRequest) (*berryv1.ListUsersResponse, error) {
	v, err := a.current(ctx)
	if err != nil {
		return nil, err
	}
	return &berryv1.ListUsersResponse{Version: v.Version, Users: config.Redact(v.Config).GetUsers()}, nil
}

// GetUser implements berryv1.AdminServiceServer.
func (a *AdminService) GetUser(ctx context.Context, req *berryv1.GetUserRequest) (*berryv1.GetUserResponse, error) {
	v, err := a.current(ctx)
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
func (a *AdminService) PutUser(ctx context.Context, req *berryv1.PutUserRequest) (*berryv1.PutUserResponse, error) {
	u := proto.Clone(req.GetUser()).(*berryv1.User)
	if u == nil || u.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "user.id: required")
	}
	v, _, err := a.write(ctx, change{what: "put user " + u.GetId(), opts: req.GetOptions(), mutate: func(cfg *berryv1.Config) error {
		if i := indexOf(cfg.GetUsers(), u.GetId()); i >= 0 && u.Token == "" && len(u.TokenSha256) == 0 {
			u.TokenSha256 = cfg.Users[i].GetTokenSha256() // a redacted read written back keeps its key
		}
		put(&cfg.Users, u)
		return nil
	}})
	if err != nil {
		return nil, toStatus(err)
	}
	return &berryv1.PutUserResponse{Version: v.Version}, nil
}

// DeleteUser implements berryv1.AdminServiceServer.
func (a *AdminService) DeleteUser(ctx context.Context, req *berryv1.DeleteUserRequest) (*berryv1.DeleteUserResponse, error) {
	v, _, err := a.write(ctx, change{what: "delete user " + req.GetId(), opts: req.GetOptions(), mutate: func(cfg *berryv1.Config) error {
		return remove(&cfg.Users, "user", req.GetId())
	}})
	if err != nil {
		return nil, toStatus(err)
	}
	return &berryv1.DeleteUserResponse{Version: v.Version}, nil
}

// GetSettings implements berryv1.AdminServiceServer.
func (a *AdminService) GetSettings(ctx context.Context, _ *berryv1.GetSettingsRequest) (*berryv1.GetSettingsResponse, error) {
	v, err := a.current(ctx)
	if err != nil {
		return nil, err
	}
	return &berryv1.GetSettingsResponse{Version: v.Version, Settings: v.Config.GetSettings()}, nil
}

// UpdateSettings implements berryv1.AdminServiceServer.
func (a *AdminService) UpdateSettings(ctx context.Context, req *berryv1.UpdateSettingsRequest) (*berryv1.UpdateSettingsResponse, error) {
	st := proto.Clone(req.GetSettings()).(*berryv1.Settings)
	if st == nil {
		return nil, status.Error(codes.InvalidArgument, "settings: required")
	}
	v, _, err := a.write(ctx, change{what: "update settings", opts: req.GetOptions(), mutate: func(cfg *berryv1.Config) error {
		cfg.Settings = st
		return nil
	}})
	if err != nil {
		return nil, toStatus(err)
	}
	return &berryv1.UpdateSettingsResponse{Version: v.Version}, nil
}

// ListVersions implements berryv1.AdminServiceServer.
func (a *AdminService) ListVersions(ctx context.Context, req *berryv1.ListVersionsRequest) (*berryv1.ListVersionsResponse, error) {
	limit := min(int(cmp.Or(req.GetLimit(), 100)), 1000)
	vs, err := a.store.List(ctx, req.GetBefore(), limit)
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
func (a *AdminService) GetVersion(ctx context.Context, req *berryv1.GetVersionRequest) (*berryv1.GetVersionResponse, error) {
	if req.GetVersion() == 0 {
		return nil, status.Error(codes.InvalidArgument, "version: required")
	}
	v, err := a.version(ctx, req.GetVersion())
	if err != nil {
		return nil, err
	}
	v.Config = config.Redact(v.Config)
	return &berryv1.GetVersionResponse{Version: v}, nil
}

// DiffVersions implements berryv1.AdminServiceServer.
func (a *AdminService) DiffVersions(ctx context.Context, req *berryv1.DiffVersionsRequest) (*berryv1.DiffVersionsResponse, error) {
	var from *berryv1.ConfigVersion
	if req.GetFrom() == 0 {
		from = &berryv1.ConfigVersion{} // from nothing
	} else {
		var err error
		if from, err = a.version(ctx, req.GetFrom()); err != nil {
			return nil, err
		}
	}
	to, err := a.version(ctx, req.GetTo())
	if err != nil {
		return nil, err
	}
	return &berryv1.DiffVersionsResponse{From: from.Version, To: to.Version, Changes: configdiff.Changes(from.Config, to.Config)}, nil
}

// Rollback implements berryv1.AdminServiceServer.
func (a *AdminService) Rollback(ctx context.Context, req *berryv1.RollbackRequest) (*berryv1.RollbackResponse, error) {
	if req.GetToVersion() == 0 {
		return nil, status.Error(codes.InvalidArgument, "to_version: required")
	}
	old, err := a.version(ctx, req.GetToVersion())
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("rollback to version %d", old.Version)
	v, _, err := a.write(ctx, change{what: what, opts: req.GetOptions(), mutate: replaceWith(old.Config)})
	if err != nil {
		return nil, toStatus(err)
	}
	return &berryv1.RollbackResponse{Version: v.Version}, nil
}

// CreateKey implements berryv1.AdminServiceServer. Its rate limit and budget are
// checked with the whole config (config.Validate, in write), so a bad value is
// InvalidArgument naming the field, e.g. users.<id>.budget.usd_per_day.
func (a *AdminService) CreateKey(ctx context.Context, req *berryv1.CreateKeyRequest) (*berryv1.CreateKeyResponse, error) {
	key := newKey()
	id := req.GetUserId()
	if id == "" {
		id = "key-" + randomHex(4)
	}
	u := &berryv1.User{
		Id: id, Name: cmp.Or(req.GetName(), id), TokenSha256: config.HashToken(key), Enabled: true,
		AllowedModels: req.GetAllowedModels(), Tags: req.GetTags(), RateLimit: req.GetRateLimit(),
		ExpiresAt: req.GetExpiresAt(), Budget: req.GetBudget(),
	}
	if exp := req.GetExpiresAt(); exp != nil && !exp.AsTime().After(timestamppb.Now().AsTime()) {
		return nil, status.Error(codes.InvalidArgument, "expires_at: must be in the future")
	}
	v, _, err := a.write(ctx, change{what: "create key " + id, opts: req.GetOptions(), mutate: func(cfg *berryv1.Config) error {
		if indexOf(cfg.GetUsers(), id) >= 0 {
			return status.Errorf(codes.AlreadyExists, "users.%s: already exists", id)
		}
		cfg.Users = append(cfg.Users, u)
		return nil
	}})
	if err != nil {
		return nil, toStatus(err)
	}
	return &berryv1.CreateKeyResponse{Version: v.Version, UserId: id, Key: key}, nil
}

// SetKeyEnabled implements berryv1.AdminServiceServer.
func (a *AdminService) SetKeyEnabled(ctx context.Context, req *berryv1.SetKeyEnabledRequest) (*berryv1.SetKeyEnabledResponse, error) {
	what := "disable key " + req.GetUserId()
	if req.GetEnabled() {
		what = "enable key " + req.GetUserId()
	}
	v, _, err := a.write(ctx, change{what: what, opts: req.GetOptions(), mutate: func(cfg *berryv1.Config) error {
		i := indexOf(cfg.GetUsers(), req.GetUserId())
		if i < 0 {
			return fmt.Errorf("users.%s: %w", req.GetUserId(), errNotFound)
		}
		cfg.Users[i].Enabled = req.GetEnabled()
		return nil
	}})
	if err != nil {
		return nil, toStatus(err)
	}
	return &berryv1.SetKeyEnabledResponse{Version: v.Version}, nil
}

// FleetStatus implements berryv1.AdminServiceServer.
func (a *AdminService) FleetStatus(ctx context.Context, _ *berryv1.FleetStatusRequest) (*berryv1.FleetStatusResponse, error) {
	v, err := a.current(ctx)
	if err != nil {
		return nil, err
	}
	out := &berryv1.FleetStatusResponse{CurrentVersion: v.Version, RolledOut: a.fleet.RolledOut(v.Version)}
	for _, e := range a.fleet.List() {
		out.Edges = append(out.Edges, &berryv1.EdgeStatus{
			EdgeId: e.ID, Address: e.Address, Peer: e.Peer, BuildVersion: e.BuildVersion,
			AppliedVersion: e.AppliedVersion, Connected: e.Connected,
			ConnectedSince: timestamppb.New(e.ConnectedSince), LastSeen: timestamppb.New(e.LastSeen),
			LastAckVersion: e.LastAckVersion, LastNack: e.LastNack,
		})
	}
	if a.cluster != nil {
		a.cluster.gatherFleet(ctx, out)
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
func (a *AdminService) Backup(_ *berryv1.BackupRequest, stream grpc.ServerStreamingServer[berryv1.BackupResponse]) error {
	w := &chunkWriter{send: func(b []byte) error { return stream.Send(&berryv1.BackupResponse{Data: b}) }}
	n, err := a.store.Backup(stream.Context(), w)
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		return toStatus(err)
	}
	a.log.Info("backup sent", "bytes", n, "by", auth.FromContext(stream.Context()).Name)
	return nil
}

// chunkWriter cuts a byte stream into messages well under gRPC's 4 MiB default.
// Every chunk has its own buffer: gRPC does not allow a message to change after
// SendMsg (stats handlers and tracing may read it later).
type chunkWriter struct {
	buf  []byte
	send func([]byte) error
}

const chunkSize = 1 << 20

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, chunkSize)
		}
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
	w.buf = nil
	return err
}
