package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	"github.com/berry-gateway/berry/controlplane/internal/server"
	"github.com/berry-gateway/berry/controlplane/internal/store"
)

// serve runs a control plane on loopback whose admin token is token.
func serve(t *testing.T, token string) string {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "berry.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(st, server.Options{})
	if err := srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	gs := srv.NewGRPCServer(auth.NewPolicy([]auth.Credential{{Name: "admin", Role: auth.RoleAdmin, Token: token}}, server.ReadMethods))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(func() {
		srv.Shutdown()
		gs.Stop()
		st.Close()
	})
	return lis.Addr().String()
}

func TestTokenFile(t *testing.T) {
	const token = "berryctl-admin-token"
	addr := serve(t, token)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, wrong, blank := file("good", token+"\n"), file("wrong", "nope\n"), file("blank", "  \n")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"--token-file", []string{"--token-file", good}, nil, ""},
		{"BERRY_TOKEN_FILE", nil, map[string]string{"BERRY_TOKEN_FILE": good}, ""},
		{"the flag wins over the environment", []string{"--token-file", good}, map[string]string{"BERRY_TOKEN": "nope"}, ""},
		{"a wrong token", []string{"--token-file", wrong}, nil, "authentication failed: invalid token"},
		{"an empty file", []string{"--token-file", blank}, nil, "--token-file " + blank + ": no token in the file"},
		{"both flags", []string{"--token", token, "--token-file", good}, nil, "--token and --token-file: give one of them"},
		{"both variables", nil, map[string]string{"BERRY_TOKEN": token, "BERRY_TOKEN_FILE": good}, "BERRY_TOKEN and BERRY_TOKEN_FILE: set one of them"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"BERRY_TOKEN", "BERRY_TOKEN_FILE", "BERRY_SERVER"} {
				t.Setenv(k, tt.env[k])
			}
			var out bytes.Buffer
			err := run(append([]string{"--server", addr, "versions"}, tt.args...), &out)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("versions: %s", oneLine(err))
				}
				if !strings.Contains(out.String(), "VERSION") {
					t.Fatalf("output %q", out.String())
				}
				return
			}
			if err == nil || !strings.Contains(oneLine(err), tt.wantErr) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}
