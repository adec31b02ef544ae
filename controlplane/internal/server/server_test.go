package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"github.com/berry-gateway/berry/pkg/grpccreds"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	adminTok = "admin-secret-token"
	readTok  = "read-secret-token"
	edgeTok  = "edge-secret-token"

	providerKey = "sk-provider-secret-key"
	userToken   = "user-clear-token-secret"
)

const seed = `
[settings]
request_timeout_seconds = 30

[providers.openai]
name = "OpenAI"
base_url = "https://api.openai.com/v1"
api_key = "` + providerKey + `"
models = ["gpt-4o", "gpt-4o-mini"]
headers = { "X-Api-Key" = "header-secret-value" }

[models.gpt]
name = "gpt"
[[models.gpt.backends]]
provider = "openai"
model = "gpt-4o"
weight = 1

[users.alice]
name = "Alice"
token = "` + userToken + `"
`

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	srv  *Server
	gs   *grpc.Server
	addr string
	logs *syncBuffer
	path string
}

// start serves a control plane on loopback with the three role tokens.
func start(t testing.TB) *harness { return startWith(t, Options{}) }

// startWith is start with options (their Log is the harness's).
func startWith(t testing.TB, opts Options) *harness { return startListener(t, opts, nil) }

// startListener is startWith serving on the loopback listener wrap returns (nil: the
// listener itself).
func startListener(t testing.TB, opts Options, wrap func(net.Listener) net.Listener) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "berry.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opts.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := New(st, opts)
	srv.Start(context.Background())
	policy := auth.NewPolicy([]auth.Credential{
		{Name: "admin", Role: auth.RoleAdmin, Token: adminTok},
		{Name: "read", Role: auth.RoleRead, Token: readTok},
		{Name: "edge", Role: auth.RoleEdge, Token: edgeTok},
	}, ReadMethods)
	gs := srv.NewGRPCServer(policy)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		lis = wrap(lis)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(func() {
		srv.Shutdown()
		gs.Stop()
		st.Close()
	})
	return &harness{srv: srv, gs: gs, addr: lis.Addr().String(), logs: logs, path: path}
}

func (h *harness) conn(t testing.TB, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(grpccreds.Bearer{Token: token, AllowPlaintext: true}))
	}
	c, err := grpc.NewClient(h.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (h *harness) admin(t *testing.T, token string) berryv1.AdminServiceClient {
	return berryv1.NewAdminServiceClient(h.conn(t, token))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (h *harness) seed(t *testing.T) {
	t.Helper()
	_, err := h.admin(t, adminTok).ApplyConfig(ctxT(t), &berryv1.ApplyConfigRequest{
		Source: &berryv1.ApplyConfigRequest_Toml{Toml: seed}, Options: &berryv1.WriteOptions{Message: "seed"}})
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("%s: code %v (%v), want %v", what, got, err, want)
	}
}

func TestAuthRoles(t *testing.T) {
	h := start(t)
	h.seed(t)
	read := func(c berryv1.AdminServiceClient) error {
		_, err := c.ListProviders(ctxT(t), &berryv1.ListProvidersRequest{})
		return err
	}
	write := func(c berryv1.AdminServiceClient) error {
		_, err := c.UpdateSettings(ctxT(t), &berryv1.UpdateSettingsRequest{Settings: &berryv1.Settings{MaxRetries: 2}})
		return err
	}
	exportSecrets := func(c berryv1.AdminServiceClient) error {
		_, err := c.ExportConfig(ctxT(t), &berryv1.ExportConfigRequest{IncludeSecrets: true})
		return err
	}
	sync := func(tok string) error {
		stream, err := berryv1.NewEdgeServiceClient(h.conn(t, tok)).Sync(ctxT(t))
		if err != nil {
			return err
		}
		// A refused stream may already be closed: Send then says io.EOF and Recv
		// gives the status.
		if err := stream.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Hello{Hello: &berryv1.Hello{EdgeId: "e"}}}); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		_, err = stream.Recv()
		return err
	}
	tests := []struct {
		name  string
		token string
		call  func(tok string) error
		want  codes.Code
	}{
		{"admin reads", adminTok, func(tok string) error { return read(h.admin(t, tok)) }, codes.OK},
		{"admin writes", adminTok, func(tok string) error { return write(h.admin(t, tok)) }, codes.OK},
		{"admin exports secrets", adminTok, func(tok string) error { return exportSecrets(h.admin(t, tok)) }, codes.OK},
		{"admin syncs", adminTok, sync, codes.OK},
		{"read reads", readTok, func(tok string) error { return read(h.admin(t, tok)) }, codes.OK},
		{"read may not write", readTok, func(tok string) error { return write(h.admin(t, tok)) }, codes.PermissionDenied},
		{"read may not export secrets", readTok, func(tok string) error { return exportSecrets(h.admin(t, tok)) }, codes.PermissionDenied},
		{"read may not sync", readTok, sync, codes.PermissionDenied},
		{"edge syncs", edgeTok, sync, codes.OK},
		{"edge may not read", edgeTok, func(tok string) error { return read(h.admin(t, tok)) }, codes.PermissionDenied},
		{"edge may not write", edgeTok, func(tok string) error { return write(h.admin(t, tok)) }, codes.PermissionDenied},
		{"no token", "", func(tok string) error { return read(h.admin(t, tok)) }, codes.Unauthenticated},
		{"wrong token", "nope", func(tok string) error { return read(h.admin(t, tok)) }, codes.Unauthenticated},
		{"token prefix", adminTok[:5], func(tok string) error { return write(h.admin(t, tok)) }, codes.Unauthenticated},
		{"no token sync", "", sync, codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.name, tt.call(tt.token), tt.want)
		})
	}
	// Health and reflection need no token.
	hr, err := healthpb.NewHealthClient(h.conn(t, "")).Check(ctxT(t), &healthpb.HealthCheckRequest{Service: "berry.v1.AdminService"})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", hr, err)
	}
	rs, err := reflectionpb.NewServerReflectionClient(h.conn(t, "")).ServerReflectionInfo(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !strings.Contains(strings.Join(names, " "), "berry.v1.AdminService") {
		t.Fatalf("reflection lists %v", names)
	}
	// The author of a version is the credential's name, never the token.
	vs, err := h.admin(t, readTok).ListVersions(ctxT(t), &berryv1.ListVersionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if vs.Versions[0].GetAuthor() != "admin" {
		t.Fatalf("author %q, want admin", vs.Versions[0].GetAuthor())
	}
}

func TestCRUD(t *testing.T) {
	h := start(t)
	h.seed(t)
	c := h.admin(t, adminTok)
	prov := func(id string) *berryv1.Provider {
		return &berryv1.Provider{Id: id, Name: id, BaseUrl: "https://" + id + ".example/v1", Models: []string{"m1"}, Enabled: true, ApiKey: "k-" + id}
	}
	model := func(id, provider string) *berryv1.Model {
		return &berryv1.Model{Id: id, Name: id, Enabled: true, Backends: []*berryv1.Backend{{Provider: provider, Model: "m1", Weight: 1, Enabled: true}}}
	}
	tests := []struct {
		name    string
		call    func(ctx context.Context) error
		want    codes.Code
		wantMsg string
	}{
		{"put provider", func(ctx context.Context) error {
			_, err := c.PutProvider(ctx, &berryv1.PutProviderRequest{Provider: prov("azure1")})
			return err
		}, codes.OK, ""},
		{"put provider invalid url", func(ctx context.Context) error {
			p := prov("bad")
			p.BaseUrl = "ftp://x"
			_, err := c.PutProvider(ctx, &berryv1.PutProviderRequest{Provider: p})
			return err
		}, codes.InvalidArgument, "providers.bad.base_url"},
		{"put provider no id", func(ctx context.Context) error {
			_, err := c.PutProvider(ctx, &berryv1.PutProviderRequest{Provider: &berryv1.Provider{}})
			return err
		}, codes.InvalidArgument, "provider.id"},
		{"get provider", func(ctx context.Context) error {
			r, err := c.GetProvider(ctx, &berryv1.GetProviderRequest{Id: "azure1"})
			if err == nil && (r.Provider.ApiKey != "" || !r.Provider.ApiKeySet) {
				return fmt.Errorf("provider key not redacted: %v", r.Provider)
			}
			return err
		}, codes.OK, ""},
		{"get missing provider", func(ctx context.Context) error {
			_, err := c.GetProvider(ctx, &berryv1.GetProviderRequest{Id: "nope"})
			return err
		}, codes.NotFound, "nope"},
		{"put model", func(ctx context.Context) error {
			_, err := c.PutModel(ctx, &berryv1.PutModelRequest{Model: model("m-azure", "azure1")})
			return err
		}, codes.OK, ""},
		{"put model unknown provider", func(ctx context.Context) error {
			_, err := c.PutModel(ctx, &berryv1.PutModelRequest{Model: model("m2", "ghost")})
			return err
		}, codes.InvalidArgument, "models.m2.backends[0].provider"},
		{"delete provider still used", func(ctx context.Context) error {
			_, err := c.DeleteProvider(ctx, &berryv1.DeleteProviderRequest{Id: "azure1"})
			return err
		}, codes.InvalidArgument, "models.m-azure.backends[0].provider"},
		{"get model", func(ctx context.Context) error {
			r, err := c.GetModel(ctx, &berryv1.GetModelRequest{Id: "m-azure"})
			if err == nil && r.Model.GetStrategy() != "" && r.Model.GetName() != "m-azure" {
				return fmt.Errorf("got %v", r.Model)
			}
			return err
		}, codes.OK, ""},
		{"delete model", func(ctx context.Context) error {
			_, err := c.DeleteModel(ctx, &berryv1.DeleteModelRequest{Id: "m-azure"})
			return err
		}, codes.OK, ""},
		{"delete missing model", func(ctx context.Context) error {
			_, err := c.DeleteModel(ctx, &berryv1.DeleteModelRequest{Id: "m-azure"})
			return err
		}, codes.NotFound, "m-azure"},
		{"delete provider", func(ctx context.Context) error {
			_, err := c.DeleteProvider(ctx, &berryv1.DeleteProviderRequest{Id: "azure1"})
			return err
		}, codes.OK, ""},
		{"put user without token", func(ctx context.Context) error {
			_, err := c.PutUser(ctx, &berryv1.PutUserRequest{User: &berryv1.User{Id: "bob", Enabled: true}})
			return err
		}, codes.InvalidArgument, "users.bob.token"},
		{"put user", func(ctx context.Context) error {
			_, err := c.PutUser(ctx, &berryv1.PutUserRequest{User: &berryv1.User{Id: "bob", Token: "bob-token", Enabled: true, AllowedModels: []string{"gpt"}}})
			return err
		}, codes.OK, ""},
		{"put user duplicate token", func(ctx context.Context) error {
			_, err := c.PutUser(ctx, &berryv1.PutUserRequest{User: &berryv1.User{Id: "carol", Token: "bob-token", Enabled: true}})
			return err
		}, codes.InvalidArgument, "same token as users.bob"},
		{"put user unknown model", func(ctx context.Context) error {
			_, err := c.PutUser(ctx, &berryv1.PutUserRequest{User: &berryv1.User{Id: "bob", AllowedModels: []string{"nope"}}})
			return err
		}, codes.InvalidArgument, "users.bob.allowed_models"},
		{"get user", func(ctx context.Context) error {
			r, err := c.GetUser(ctx, &berryv1.GetUserRequest{Id: "bob"})
			if err == nil && (r.User.Token != "" || len(r.User.TokenSha256) != 0) {
				return fmt.Errorf("user token not redacted: %v", r.User)
			}
			return err
		}, codes.OK, ""},
		{"delete user", func(ctx context.Context) error {
			_, err := c.DeleteUser(ctx, &berryv1.DeleteUserRequest{Id: "bob"})
			return err
		}, codes.OK, ""},
		{"update settings", func(ctx context.Context) error {
			_, err := c.UpdateSettings(ctx, &berryv1.UpdateSettingsRequest{Settings: &berryv1.Settings{RequestTimeoutSeconds: 99}})
			return err
		}, codes.OK, ""},
		{"get settings has defaults", func(ctx context.Context) error {
			r, err := c.GetSettings(ctx, &berryv1.GetSettingsRequest{})
			if err == nil && (r.Settings.RequestTimeoutSeconds != 99 || r.Settings.HealthCheckIntervalSeconds == 0) {
				return fmt.Errorf("settings %v", r.Settings)
			}
			return err
		}, codes.OK, ""},
		{"update settings nil", func(ctx context.Context) error {
			_, err := c.UpdateSettings(ctx, &berryv1.UpdateSettingsRequest{})
			return err
		}, codes.InvalidArgument, "settings"},
		{"apply invalid toml", func(ctx context.Context) error {
			_, err := c.ApplyConfig(ctx, &berryv1.ApplyConfigRequest{Source: &berryv1.ApplyConfigRequest_Toml{Toml: "[models.x]\nname = \"x\"\n"}})
			return err
		}, codes.InvalidArgument, "models.x.backends"},
		{"apply nothing", func(ctx context.Context) error {
			_, err := c.ApplyConfig(ctx, &berryv1.ApplyConfigRequest{})
			return err
		}, codes.InvalidArgument, "source"},
		{"apply proto form", func(ctx context.Context) error {
			cfg := &berryv1.Config{Providers: []*berryv1.Provider{prov("p")}, Models: []*berryv1.Model{model("m", "p")},
				Users: []*berryv1.User{{Id: "u", Token: "u-token", Enabled: true}}}
			_, err := c.ApplyConfig(ctx, &berryv1.ApplyConfigRequest{Source: &berryv1.ApplyConfigRequest_Config{Config: cfg}})
			return err
		}, codes.OK, ""},
		{"list after proto apply", func(ctx context.Context) error {
			r, err := c.ListUsers(ctx, &berryv1.ListUsersRequest{})
			if err == nil && (len(r.Users) != 1 || r.Users[0].Id != "u") {
				return fmt.Errorf("users %v", r.Users)
			}
			return err
		}, codes.OK, ""},
		{"list models", func(ctx context.Context) error {
			r, err := c.ListModels(ctx, &berryv1.ListModelsRequest{})
			if err == nil && len(r.Models) != 1 {
				return fmt.Errorf("models %v", r.Models)
			}
			return err
		}, codes.OK, ""},
		{"get version 0", func(ctx context.Context) error {
			_, err := c.GetVersion(ctx, &berryv1.GetVersionRequest{})
			return err
		}, codes.InvalidArgument, "version"},
		{"get missing version", func(ctx context.Context) error {
			_, err := c.GetVersion(ctx, &berryv1.GetVersionRequest{Version: 999})
			return err
		}, codes.NotFound, "999"},
		{"diff missing version", func(ctx context.Context) error {
			_, err := c.DiffVersions(ctx, &berryv1.DiffVersionsRequest{From: 1, To: 999})
			return err
		}, codes.NotFound, "999"},
		{"rollback to 0", func(ctx context.Context) error {
			_, err := c.Rollback(ctx, &berryv1.RollbackRequest{})
			return err
		}, codes.InvalidArgument, "to_version"},
		{"rollback to missing", func(ctx context.Context) error {
			_, err := c.Rollback(ctx, &berryv1.RollbackRequest{ToVersion: 999})
			return err
		}, codes.NotFound, "999"},
		{"disable missing key", func(ctx context.Context) error {
			_, err := c.SetKeyEnabled(ctx, &berryv1.SetKeyEnabledRequest{UserId: "ghost"})
			return err
		}, codes.NotFound, "ghost"},
		{"create key in the past", func(ctx context.Context) error {
			_, err := c.CreateKey(ctx, &berryv1.CreateKeyRequest{ExpiresAt: timestamppb.New(time.Now().Add(-time.Hour))})
			return err
		}, codes.InvalidArgument, "expires_at"},
		{"create key existing id", func(ctx context.Context) error {
			_, err := c.CreateKey(ctx, &berryv1.CreateKeyRequest{UserId: "u"})
			return err
		}, codes.AlreadyExists, "users.u"},
		{"create key unknown model", func(ctx context.Context) error {
			_, err := c.CreateKey(ctx, &berryv1.CreateKeyRequest{AllowedModels: []string{"zzz"}})
			return err
		}, codes.InvalidArgument, "allowed_models"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(ctxT(t))
			wantCode(t, tt.name, err, tt.want)
			if tt.wantMsg != "" && !strings.Contains(status.Convert(err).Message(), tt.wantMsg) {
				t.Fatalf("message %q does not name %q", status.Convert(err).Message(), tt.wantMsg)
			}
		})
	}
	// Every accepted write above made exactly one version, gap-free.
	vs, err := c.ListVersions(ctxT(t), &berryv1.ListVersionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs.Versions {
		if want := uint64(len(vs.Versions) - i); v.Version != want {
			t.Fatalf("versions not gap-free: %v", vs.Versions)
		}
	}
	if n := len(vs.Versions); n != 9 { // seed + 8 accepted writes
		t.Fatalf("%d versions, want 9", n)
	}
}

// A read written back (secrets redacted) must keep the stored secrets.
func TestPutKeepsRedactedSecrets(t *testing.T) {
	h := start(t)
	h.seed(t)
	c := h.admin(t, adminTok)
	p, err := c.GetProvider(ctxT(t), &berryv1.GetProviderRequest{Id: "openai"})
	if err != nil {
		t.Fatal(err)
	}
	p.Provider.Name = "Renamed"
	if _, err := c.PutProvider(ctxT(t), &berryv1.PutProviderRequest{Provider: p.Provider}); err != nil {
		t.Fatal(err)
	}
	u, err := c.GetUser(ctxT(t), &berryv1.GetUserRequest{Id: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	u.User.Tags = []string{"vip"}
	if _, err := c.PutUser(ctxT(t), &berryv1.PutUserRequest{User: u.User}); err != nil {
		t.Fatal(err)
	}
	cur, err := h.srv.admin.store.Current(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	gp, gu := cur.Config.Providers[0], cur.Config.Users[0]
	if gp.Name != "Renamed" || gp.ApiKey != providerKey || gp.Headers["X-Api-Key"] != "header-secret-value" {
		t.Fatalf("provider after put: %v", gp)
	}
	if !bytes.Equal(gu.TokenSha256, config.HashToken(userToken)) || len(gu.Tags) != 1 {
		t.Fatalf("user after put: %v", gu)
	}
}

func TestStaleWriteRefused(t *testing.T) {
	h := start(t)
	h.seed(t)
	a, b := h.admin(t, adminTok), h.admin(t, adminTok)
	base, err := a.GetCurrentVersion(ctxT(t), &berryv1.GetCurrentVersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	opts := &berryv1.WriteOptions{ExpectedVersion: base.Version}
	if _, err := a.UpdateSettings(ctxT(t), &berryv1.UpdateSettingsRequest{Settings: &berryv1.Settings{MaxRetries: 1}, Options: opts}); err != nil {
		t.Fatal(err)
	}
	// b read the same version and writes after a: refused, whatever the RPC.
	writes := map[string]func() error{
		"settings": func() error {
			_, err := b.UpdateSettings(ctxT(t), &berryv1.UpdateSettingsRequest{Settings: &berryv1.Settings{MaxRetries: 5}, Options: opts})
			return err
		},
		"apply": func() error {
			_, err := b.ApplyConfig(ctxT(t), &berryv1.ApplyConfigRequest{Source: &berryv1.ApplyConfigRequest_Toml{Toml: seed}, Options: opts})
			return err
		},
		"import": func() error {
			_, err := b.ImportConfig(ctxT(t), &berryv1.ImportConfigRequest{Toml: seed, ExpectedVersion: base.Version})
			return err
		},
		"rollback": func() error {
			_, err := b.Rollback(ctxT(t), &berryv1.RollbackRequest{ToVersion: 1, Options: opts})
			return err
		},
		"create key": func() error {
			_, err := b.CreateKey(ctxT(t), &berryv1.CreateKeyRequest{Options: opts})
			return err
		},
	}
	for name, w := range writes {
		wantCode(t, name, w(), codes.FailedPrecondition)
	}
	s, err := b.GetSettings(ctxT(t), &berryv1.GetSettingsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != base.Version+1 || s.Settings.MaxRetries != 1 {
		t.Fatalf("after stale writes: version %d max_retries %d; want %d and 1", s.Version, s.Settings.MaxRetries, base.Version+1)
	}
}

func TestRollbackAndDiff(t *testing.T) {
	h := start(t)
	h.seed(t) // v1
	c := h.admin(t, adminTok)
	if _, err := c.UpdateSettings(ctxT(t), &berryv1.UpdateSettingsRequest{Settings: &berryv1.Settings{RequestTimeoutSeconds: 77}}); err != nil {
		t.Fatal(err) // v2
	}
	d, err := c.DiffVersions(ctxT(t), &berryv1.DiffVersionsRequest{From: 1, To: 2})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, ch := range d.Changes {
		paths = append(paths, ch.Path+"="+ch.Before+">"+ch.After)
	}
	if !strings.Contains(strings.Join(paths, ";"), "settings.request_timeout_seconds=30>77") {
		t.Fatalf("diff 1..2: %v", paths)
	}
	r, err := c.Rollback(ctxT(t), &berryv1.RollbackRequest{ToVersion: 1, Options: &berryv1.WriteOptions{ExpectedVersion: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 3 {
		t.Fatalf("rollback made version %d, want 3", r.Version)
	}
	v1, _ := h.srv.admin.store.Get(ctxT(t), 1)
	v3, _ := h.srv.admin.store.Get(ctxT(t), 3)
	if !proto.Equal(v1.Config, v3.Config) {
		t.Fatal("version 3 differs from version 1")
	}
	if !strings.Contains(v3.Message, "rollback to version 1") {
		t.Fatalf("message %q", v3.Message)
	}
	d, err = c.DiffVersions(ctxT(t), &berryv1.DiffVersionsRequest{From: 1, To: 3})
	if err != nil || len(d.Changes) != 0 {
		t.Fatalf("diff 1..3 = %v, %v; want none", d.GetChanges(), err)
	}
	// Edges see the rollback as a new, higher version.
	snap, _ := h.srv.admin.snapshots.Watch()
	if snap.GetVersion() != 3 {
		t.Fatalf("published version %d, want 3", snap.GetVersion())
	}
}

func TestKeysAndSecrets(t *testing.T) {
	h := start(t)
	h.seed(t)
	c := h.admin(t, adminTok)
	exp := timestamppb.New(time.Now().Add(24 * time.Hour).Truncate(time.Second))
	k, err := c.CreateKey(ctxT(t), &berryv1.CreateKeyRequest{Name: "ci", AllowedModels: []string{"gpt"}, Tags: []string{"ci"},
		RateLimit: &berryv1.RateLimit{RequestsPerMinute: 10}, ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.Key, KeyPrefix) || len(k.Key) < len(KeyPrefix)+40 || k.UserId == "" {
		t.Fatalf("key %q id %q", k.Key, k.UserId)
	}
	// Stored and sent to edges as a hash only.
	snap, _ := h.srv.admin.snapshots.Watch()
	var got *berryv1.User
	for _, u := range snap.Config.Users {
		if u.Id == k.UserId {
			got = u
		}
	}
	if got == nil || got.Token != "" || !bytes.Equal(got.TokenSha256, config.HashToken(k.Key)) ||
		!got.ExpiresAt.AsTime().Equal(exp.AsTime()) || got.RateLimit.GetRequestsPerMinute() != 10 {
		t.Fatalf("edge snapshot user: %v", got)
	}
	if _, err := c.SetKeyEnabled(ctxT(t), &berryv1.SetKeyEnabledRequest{UserId: k.UserId, Enabled: false}); err != nil {
		t.Fatal(err)
	}
	u, err := c.GetUser(ctxT(t), &berryv1.GetUserRequest{Id: k.UserId})
	if err != nil || u.User.Enabled {
		t.Fatalf("after disable: %v, %v", u, err)
	}

	// No read RPC returns a secret, whoever calls it; nor does any log line.
	secrets := []string{providerKey, userToken, k.Key, "header-secret-value",
		fmt.Sprintf("%x", config.HashToken(userToken)), fmt.Sprintf("%x", config.HashToken(k.Key)),
		adminTok, readTok, edgeTok}
	r := h.admin(t, readTok)
	reads := map[string]func() (proto.Message, error){
		"GetConfig":     func() (proto.Message, error) { return r.GetConfig(ctxT(t), &berryv1.GetConfigRequest{}) },
		"ExportConfig":  func() (proto.Message, error) { return r.ExportConfig(ctxT(t), &berryv1.ExportConfigRequest{}) },
		"ListProviders": func() (proto.Message, error) { return r.ListProviders(ctxT(t), &berryv1.ListProvidersRequest{}) },
		"GetProvider": func() (proto.Message, error) {
			return r.GetProvider(ctxT(t), &berryv1.GetProviderRequest{Id: "openai"})
		},
		"ListUsers":    func() (proto.Message, error) { return r.ListUsers(ctxT(t), &berryv1.ListUsersRequest{}) },
		"GetUser":      func() (proto.Message, error) { return r.GetUser(ctxT(t), &berryv1.GetUserRequest{Id: "alice"}) },
		"ListModels":   func() (proto.Message, error) { return r.ListModels(ctxT(t), &berryv1.ListModelsRequest{}) },
		"GetVersion":   func() (proto.Message, error) { return r.GetVersion(ctxT(t), &berryv1.GetVersionRequest{Version: 1}) },
		"ListVersions": func() (proto.Message, error) { return r.ListVersions(ctxT(t), &berryv1.ListVersionsRequest{}) },
		"DiffVersions": func() (proto.Message, error) { return r.DiffVersions(ctxT(t), &berryv1.DiffVersionsRequest{From: 0}) },
		"FleetStatus":  func() (proto.Message, error) { return r.FleetStatus(ctxT(t), &berryv1.FleetStatusRequest{}) },
		"GetSettings":  func() (proto.Message, error) { return r.GetSettings(ctxT(t), &berryv1.GetSettingsRequest{}) },
	}
	for name, read := range reads {
		m, err := read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		js := protojson.Format(m)
		bin, _ := proto.Marshal(m)
		for _, s := range secrets {
			if strings.Contains(js, s) || bytes.Contains(bin, []byte(s)) {
				t.Errorf("%s returns secret %q", name, s)
			}
		}
		for _, s := range [][]byte{config.HashToken(userToken), config.HashToken(k.Key)} {
			if bytes.Contains(bin, s) {
				t.Errorf("%s returns a raw token hash", name)
			}
		}
	}
	// With include_secrets an admin gets the provider key back (for migrations).
	full, err := c.ExportConfig(ctxT(t), &berryv1.ExportConfigRequest{IncludeSecrets: true})
	if err != nil || !strings.Contains(full.Toml, providerKey) {
		t.Fatalf("admin export with secrets: %v", err)
	}
	logs := h.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain secret %q", s)
		}
	}
}

// fakeEdge is an in-process edge speaking the real protocol over loopback gRPC.
type fakeEdge struct {
	id      string
	applied chan uint64
}

func (e *fakeEdge) run(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := berryv1.NewEdgeServiceClient(conn).Sync(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Hello{Hello: &berryv1.Hello{EdgeId: e.id, BuildVersion: "test", ListenAddress: "127.0.0.1:1"}}}); err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		v := msg.GetSnapshot().GetVersion()
		if err := stream.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Ack{Ack: &berryv1.SnapshotAck{Version: v, Accepted: true}}}); err != nil {
			return err
		}
		select {
		case e.applied <- v:
		default:
		}
	}
}

func TestFleetOf100EdgesAck(t *testing.T) {
	h := start(t)
	h.seed(t)
	c := h.admin(t, adminTok)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	const n = 100
	conn := h.conn(t, edgeTok) // one HTTP/2 connection carries all streams
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		e := &fakeEdge{id: fmt.Sprintf("edge-%03d", i), applied: make(chan uint64, 4)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.run(ctx, conn); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", e.id, err)
			}
		}()
	}
	defer wg.Wait()
	defer cancel()

	waitFleet := func(want uint64) *berryv1.FleetStatusResponse {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			fs, err := c.FleetStatus(ctxT(t), &berryv1.FleetStatusRequest{})
			if err != nil {
				t.Fatal(err)
			}
			acked := 0
			for _, e := range fs.Edges {
				if e.Connected && e.AppliedVersion == want && e.LastAckVersion == want {
					acked++
				}
			}
			if acked == n && fs.RolledOut && fs.CurrentVersion == want {
				return fs
			}
			select {
			case err := <-errs:
				t.Fatal(err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 30s: %d of %d edges ACKed version %d (rolled_out %v)", acked, n, want, fs.RolledOut)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFleet(1)
	if _, err := c.UpdateSettings(ctxT(t), &berryv1.UpdateSettingsRequest{Settings: &berryv1.Settings{MaxRetries: 7}}); err != nil {
		t.Fatal(err)
	}
	fs := waitFleet(2)
	if len(fs.Edges) != n || fs.Edges[0].EdgeId != "edge-000" || fs.Edges[0].Peer == "" || fs.Edges[0].BuildVersion != "test" {
		t.Fatalf("fleet status: %d edges, first %v", len(fs.Edges), fs.Edges[0])
	}
}

func TestNackShownInFleetStatus(t *testing.T) {
	h := start(t)
	h.seed(t)
	stream, err := berryv1.NewEdgeServiceClient(h.conn(t, edgeTok)).Sync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Hello{Hello: &berryv1.Hello{EdgeId: "picky"}}}); err != nil {
		t.Fatal(err)
	}
	msg, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if msg.GetSnapshot().GetLineage() == "" {
		t.Fatal("snapshot without lineage")
	}
	if err := stream.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Ack{Ack: &berryv1.SnapshotAck{
		Version: msg.GetSnapshot().GetVersion(), ErrorDetail: "unknown strategy"}}}); err != nil {
		t.Fatal(err)
	}
	c := h.admin(t, readTok)
	deadline := time.Now().Add(10 * time.Second)
	for {
		fs, err := c.FleetStatus(ctxT(t), &berryv1.FleetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs.Edges) == 1 && fs.Edges[0].LastNack == "unknown strategy" {
			if fs.RolledOut {
				t.Fatal("rolled_out with a NACKing edge")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NACK not shown: %v", fs.Edges)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A hello carrying this lineage and the current version gets nothing new; one with
	// another lineage gets the snapshot at once.
	for _, tt := range []struct {
		lineage string
		want    bool
	}{{h.srv.admin.store.Lineage(), false}, {"other", true}} {
		ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
		s, err := berryv1.NewEdgeServiceClient(h.conn(t, edgeTok)).Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Hello{Hello: &berryv1.Hello{EdgeId: "l-" + tt.lineage, AppliedVersion: 1, AppliedLineage: tt.lineage}}})
		_, err = s.Recv()
		cancel()
		if got := err == nil; got != tt.want {
			t.Fatalf("lineage %q: got snapshot %v (err %v), want %v", tt.lineage, got, err, tt.want)
		}
	}
}

func TestBackupRPC(t *testing.T) {
	h := start(t)
	h.seed(t)
	stream, err := h.admin(t, adminTok).Backup(ctxT(t), &berryv1.BackupRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(m.Data)
	}
	if buf.Len() == 0 {
		t.Fatal("empty backup")
	}
	rs, err := h.admin(t, readTok).Backup(ctxT(t), &berryv1.BackupRequest{})
	if err == nil {
		_, err = rs.Recv() // a server stream reports its status on the first Recv
	}
	wantCode(t, "backup by read role", err, codes.PermissionDenied)
}

// Bootstrap fills an empty store only, authored "bootstrap", and publishes it.
func TestBootstrapOnlyIntoAnEmptyStore(t *testing.T) {
	h := start(t)
	for i, want := range []uint64{1, 1} {
		if err := h.srv.Bootstrap(ctxT(t), []byte(seed), "seed.toml"); err != nil {
			t.Fatalf("bootstrap %d: %v", i, err)
		}
		cur, err := h.srv.admin.store.Current(ctxT(t))
		if err != nil || cur.GetVersion() != want || cur.GetAuthor() != "bootstrap" || cur.GetMessage() != "bootstrap import of seed.toml" {
			t.Fatalf("after bootstrap %d: %v, %v", i, cur, err)
		}
		if snap, _ := h.srv.admin.snapshots.Watch(); snap.GetVersion() != want {
			t.Fatalf("after bootstrap %d: published version %d, want %d", i, snap.GetVersion(), want)
		}
	}
	if !strings.Contains(h.logs.String(), "bootstrap file ignored") {
		t.Fatalf("second bootstrap not reported as ignored:\n%s", h.logs.String())
	}
	if err := h.srv.Bootstrap(ctxT(t), []byte("[settings\n"), "bad.toml"); err == nil {
		t.Fatal("bootstrap of a broken file succeeded")
	}
}
