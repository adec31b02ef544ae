package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

func TestBootstrapOnlyWhenStoreIsEmpty(t *testing.T) {
	data := t.TempDir()
	first := filepath.Join(data, "first.toml")
	second := filepath.Join(data, "second.toml")
	if err := os.WriteFile(first, []byte(configTOML("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", "a")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(second, []byte(configTOML("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", "b")), 0o600); err != nil {
		t.Fatal(err)
	}
	backendOf := func(cp *controlPlane) (uint64, string) {
		got, err := cp.admin.GetConfig(context.Background(), &berryv1.GetConfigRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range got.GetConfig().GetModels() {
			if m.GetId() == "chat" {
				return got.GetVersion(), m.GetBackends()[0].GetProvider()
			}
		}
		t.Fatalf("no model chat in %v", got)
		return 0, ""
	}

	cp := startControlPlane(t, data, "--bootstrap", first)
	if v, p := backendOf(cp); v != 1 || p != "sim-a" {
		t.Fatalf("after bootstrap: version %d backend %s, want 1 sim-a", v, p)
	}
	cp.stop(t)

	cp = startControlPlane(t, data, "--bootstrap", second)
	if v, p := backendOf(cp); v != 1 || p != "sim-a" {
		t.Fatalf("restart with another bootstrap file: version %d backend %s, want the stored 1 sim-a", v, p)
	}
	if !strings.Contains(cp.output(), "bootstrap file ignored") {
		t.Errorf("control plane did not say it ignored the bootstrap file:\n%s", cp.output())
	}
}

func TestInvalidBootstrapFailsStartup(t *testing.T) {
	data := t.TempDir()
	bad := filepath.Join(data, "bad.toml")
	if err := os.WriteFile(bad, []byte("[providers.x]\nbase_url = \"nope\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "controlplane", "berry-controlplane", "--data", filepath.Join(data, "b.db"),
		"--grpc-listen", freeAddr(t), "--bootstrap", bad)
	<-p.done
	if p.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(p.output(), "providers.x.base_url") {
		t.Fatalf("exit %d, output:\n%s", p.cmd.ProcessState.ExitCode(), p.output())
	}
}
