package server

import (
	"strings"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/buildinfo"
	"github.com/berry-gateway/berry/pkg/config"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// A dry run checks what ApplyConfig checks and says what it would change, and writes
// nothing: the changes it shows are those the write then records.
func TestValidateConfigWritesNothing(t *testing.T) {
	h := start(t)
	h.seed(t) // version 1
	read, admin := h.admin(t, readTok), h.admin(t, adminTok)
	changed := strings.Replace(seed, "weight = 1", "weight = 3", 1)
	bad := strings.Replace(seed, "weight = 1", "weight = -1", 1) + "\n[models.other]\nname = \"other\"\nstrategy = \"nope\"\n"
	tomlReq := func(doc string) *berryv1.ValidateConfigRequest {
		return &berryv1.ValidateConfigRequest{Source: &berryv1.ValidateConfigRequest_Toml{Toml: doc}}
	}
	versions := func() int {
		t.Helper()
		r, err := read.ListVersions(ctxT(t), &berryv1.ListVersionsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return len(r.GetVersions())
	}

	r, err := read.ValidateConfig(ctxT(t), tomlReq(changed))
	if err != nil {
		t.Fatal(err)
	}
	if !r.GetValid() || r.GetCurrentVersion() != 1 || len(r.GetErrors()) != 0 || len(r.GetChanges()) != 1 ||
		r.GetChanges()[0].GetPath() != "models.gpt.backends[0].weight" || r.GetChanges()[0].GetAfter() != "3" {
		t.Fatalf("valid change: %v", r)
	}
	if n := versions(); n != 1 {
		t.Fatalf("%d versions after a dry run, want 1", n)
	}

	// The same content: valid, nothing would change.
	if r, err := read.ValidateConfig(ctxT(t), tomlReq(seed)); err != nil || !r.GetValid() || len(r.GetChanges()) != 0 {
		t.Fatalf("same config: %v, %v", r, err)
	}

	// Invalid: every problem, each at its path; no changes.
	r, err = read.ValidateConfig(ctxT(t), tomlReq(bad))
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	for _, e := range r.GetErrors() {
		paths[e.GetPath()] = e.GetMessage() != ""
	}
	if r.GetValid() || len(r.GetChanges()) != 0 || !paths["models.gpt.backends[0].weight"] || !paths["models.other.strategy"] {
		t.Fatalf("invalid config: %v", r)
	}
	// A document that does not parse: one problem, no path, the parser's words.
	r, err = read.ValidateConfig(ctxT(t), tomlReq("[providers\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.GetValid() || len(r.GetErrors()) != 1 || r.GetErrors()[0].GetPath() != "" || !strings.Contains(r.GetErrors()[0].GetMessage(), "toml") {
		t.Fatalf("unparsable: %v", r)
	}

	// The proto form, with a clear user token the write would hash: valid, and the
	// token never shows.
	cfg, _, err := config.ParseTOML([]byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Users = append(cfg.Users, &berryv1.User{Id: "bob", Name: "Bob", Token: "bob-clear-token", Enabled: true})
	r, err = read.ValidateConfig(ctxT(t), &berryv1.ValidateConfigRequest{Source: &berryv1.ValidateConfigRequest_Config{Config: cfg}})
	if err != nil || !r.GetValid() || len(r.GetChanges()) != 1 || r.GetChanges()[0].GetPath() != "users.bob" {
		t.Fatalf("proto form: %v, %v", r, err)
	}
	if strings.Contains(r.String(), "bob-clear-token") {
		t.Fatalf("the dry run shows a clear token: %v", r)
	}

	// Stale, as the write would be; no source at all is the request's fault.
	_, err = read.ValidateConfig(ctxT(t), &berryv1.ValidateConfigRequest{Source: tomlReq(changed).Source, ExpectedVersion: 7})
	wantCode(t, "stale dry run", err, codes.FailedPrecondition)
	_, err = read.ValidateConfig(ctxT(t), &berryv1.ValidateConfigRequest{})
	wantCode(t, "no source", err, codes.InvalidArgument)
	_, err = h.admin(t, edgeTok).ValidateConfig(ctxT(t), tomlReq(changed))
	wantCode(t, "edge role", err, codes.PermissionDenied)
	if n := versions(); n != 1 {
		t.Fatalf("%d versions after dry runs, want 1", n)
	}

	// What the dry run showed is what the write records.
	dry, err := read.ValidateConfig(ctxT(t), tomlReq(changed))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ApplyConfig(ctxT(t), &berryv1.ApplyConfigRequest{Source: &berryv1.ApplyConfigRequest_Toml{Toml: changed}}); err != nil {
		t.Fatal(err)
	}
	diff, err := read.DiffVersions(ctxT(t), &berryv1.DiffVersionsRequest{From: 1, To: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(diff.GetChanges()) != len(dry.GetChanges()) {
		t.Fatalf("dry run %v, write %v", dry.GetChanges(), diff.GetChanges())
	}
	for i := range diff.GetChanges() {
		if !proto.Equal(diff.GetChanges()[i], dry.GetChanges()[i]) {
			t.Fatalf("dry run %v, write %v", dry.GetChanges(), diff.GetChanges())
		}
	}
}

func TestGetServerInfo(t *testing.T) {
	h := start(t)
	r, err := h.admin(t, readTok).GetServerInfo(ctxT(t), &berryv1.GetServerInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	b := buildinfo.Get()
	if r.GetVersion() != b.Version || r.GetRevision() != b.Revision || r.GetModified() != b.Modified ||
		r.GetGoVersion() != b.GoVersion || r.GetLineage() != h.srv.admin.store.Lineage() || r.GetLineage() == "" {
		t.Fatalf("server info %v, build %+v", r, b)
	}
	_, err = h.admin(t, edgeTok).GetServerInfo(ctxT(t), &berryv1.GetServerInfoRequest{})
	wantCode(t, "edge role", err, codes.PermissionDenied)
}
