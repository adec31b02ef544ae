package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// runEdge runs berry-edge with args to its end and returns its output and exit code.
func runEdge(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "berry-edge"), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("berry-edge %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// TestEdgeCommandLine covers what an operator runs before serving: --help, --version,
// --check-config, and the healthcheck subcommand against a running edge.
func TestEdgeCommandLine(t *testing.T) {
	out, errOut, code := runEdge(t, nil, "--help")
	if code != 0 || !strings.Contains(errOut+out, "berry-edge healthcheck") || !strings.Contains(errOut+out, "--check-config") {
		t.Errorf("--help: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = runEdge(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(out, "berry-edge ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("--version: exit %d: %q", code, out)
	}

	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "good.toml"), configTOML("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", "a"))
	out, errOut, code = runEdge(t, nil, "--check-config", good)
	if code != 0 || !strings.Contains(out, "valid") {
		t.Errorf("--check-config on a valid file: exit %d\n%s%s", code, out, errOut)
	}
	bad := writeFile(t, filepath.Join(dir, "bad.toml"), `
[providers.a]
name = "a"
base_url = "ftp://x"
models = ["m"]
[models.m]
name = "m"
[[models.m.backends]]
provider = "zz"
model = "m"
`)
	_, errOut, code = runEdge(t, nil, "--check-config", bad)
	if code == 0 || !strings.Contains(errOut, "providers.a.base_url") || !strings.Contains(errOut, `unknown provider "zz"`) {
		t.Errorf("--check-config on an invalid file: exit %d, want non-zero and every problem:\n%s", code, errOut)
	}

	sim := startSim(t, upstreamsim.Options{Name: "sim-a"})
	cfg := writeFile(t, filepath.Join(dir, "serve.toml"), configTOML(sim.URL(), sim.URL(), "a"))
	addr := freeAddr(t)
	p := startProc(t, "edge", "berry-edge", "--listen", addr, "--config", cfg)
	e := &edge{proc: p, url: "http://" + addr}
	e.waitVersion(t, 1)
	if _, errOut, code := runEdge(t, nil, "healthcheck", "--url", e.url+"/readyz"); code != 0 {
		t.Errorf("healthcheck of a ready edge: exit %d: %s", code, errOut)
	}
	// BIND_ADDRESS gives the default URL's port, as in the container image.
	_, port, _ := strings.Cut(addr, ":")
	if _, errOut, code := runEdge(t, []string{"BIND_ADDRESS=0.0.0.0:" + port}, "healthcheck"); code != 0 {
		t.Errorf("healthcheck on BIND_ADDRESS's port: exit %d: %s", code, errOut)
	}
	if _, _, code := runEdge(t, nil, "healthcheck", "--url", "http://"+freeAddr(t)+"/readyz"); code == 0 {
		t.Error("healthcheck of nothing succeeded")
	}
}

// TestBuildScriptStampsVersion builds with scripts/build.sh, as the Dockerfile does,
// and asks every binary which build it is.
func TestBuildScriptStampsVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "../../scripts/build.sh", out)
	cmd.Env = append(os.Environ(), "VERSION=v9.9.9-test", "REVISION=0123456789abcdef0123")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", err, b)
	}
	for _, bin := range []string{"berry-edge", "berry-controlplane", "berryctl", "berry-sim"} {
		b, err := exec.Command(filepath.Join(out, bin), "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(b), "v9.9.9-test (0123456789ab)") {
			t.Errorf("%s --version: %v: %q", bin, err, b)
		}
	}
}

// TestPprofListen: both binaries serve runtime profiles on a loopback address when
// asked, and refuse any other address at start.
func TestPprofListen(t *testing.T) {
	_, errOut, code := runEdge(t, nil, "--pprof-listen", "0.0.0.0:6060", "--config", "/nonexistent.toml")
	if code == 0 || !strings.Contains(errOut, "loopback only") {
		t.Errorf("edge with --pprof-listen 0.0.0.0:6060: exit %d\n%s", code, errOut)
	}
	sim := startSim(t, upstreamsim.Options{})
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "c.toml"), configTOML(sim.URL(), sim.URL(), "a"))
	for _, tc := range []struct {
		name string
		args func(pprof string) (string, []string)
	}{
		{"edge", func(pprof string) (string, []string) {
			return "berry-edge", []string{"--listen", freeAddr(t), "--config", cfg, "--pprof-listen", pprof}
		}},
		{"control plane", func(pprof string) (string, []string) {
			return "berry-controlplane", []string{"--data", filepath.Join(dir, "cp.db"), "--grpc-listen", freeAddr(t), "--pprof-listen", pprof}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pprof := freeAddr(t)
			bin, args := tc.args(pprof)
			p := startProc(t, tc.name, bin, args...)
			defer p.stop(t)
			eventually(t, "profiles served", func() error {
				resp, err := http.Get("http://" + pprof + "/debug/pprof/heap?debug=1")
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode != 200 {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			})
		})
	}
}
