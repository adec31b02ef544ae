package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const (
	adminToken = "e2e-admin-token"
	readToken  = "e2e-read-token"
	edgeToken  = "e2e-edge-token"
)

var (
	berryctlOnce sync.Once
	berryctlErr  error
)

// berryctl runs the real CLI binary and returns its exit code and output.
func berryctl(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	berryctlOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "berryctl"),
			"github.com/berry-gateway/berry/controlplane/cmd/berryctl").CombinedOutput()
		if err != nil {
			berryctlErr = fmt.Errorf("building berryctl: %v\n%s", err, out)
		}
	})
	if berryctlErr != nil {
		t.Fatal(berryctlErr)
	}
	cmd := exec.Command(filepath.Join(binDir, "berryctl"), args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), o.String(), e.String()
		}
		t.Fatal(err)
	}
	return 0, o.String(), e.String()
}

type securedCP struct {
	*proc
	addr, data string
	admin      berryv1.AdminServiceClient
}

// startSecuredCP runs a control plane with the three role tokens on addr (a fresh
// loopback address when empty), waiting for its health service to answer.
func startSecuredCP(t *testing.T, data, addr string, extra ...string) *securedCP {
	t.Helper()
	if addr == "" {
		addr = freeAddr(t)
	}
	args := append([]string{"--data", data, "--grpc-listen", addr,
		"--admin-token", adminToken, "--read-token", readToken, "--edge-token", edgeToken}, extra...)
	p := startProc(t, "controlplane", "berry-controlplane", args...)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearerCreds(adminToken)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	eventually(t, "control plane healthy", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			err = fmt.Errorf("health %v", r.GetStatus())
		}
		return err
	})
	return &securedCP{proc: p, addr: addr, data: data, admin: berryv1.NewAdminServiceClient(conn)}
}

type bearerCreds string

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearerCreds) RequireTransportSecurity() bool { return false }

// startCachedEdge runs an edge with the edge token and its own cache directory.
func startCachedEdge(t *testing.T, cpAddr, id, cacheDir string) *edge {
	t.Helper()
	addr := freeAddr(t)
	p := startProc(t, "edge "+id, "berry-edge", "--listen", addr, "--control-plane", cpAddr,
		"--edge-id", id, "--token", edgeToken, "--cache-dir", cacheDir)
	e := &edge{proc: p, url: "http://" + addr}
	eventually(t, "edge "+id+" listens", func() error {
		resp, err := http.Get(e.url + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return e
}

type readyz struct {
	Status        string `json:"status"`
	ConfigVersion uint64 `json:"config_version"`
	Connected     *bool  `json:"control_plane_connected"`
}

func (e *edge) readyz(t *testing.T) (int, readyz) {
	t.Helper()
	resp, err := http.Get(e.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r readyz
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("/readyz is not JSON: %v", err)
	}
	return resp.StatusCode, r
}

func (e *edge) waitReady(t *testing.T, version uint64, connected bool) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s ready at version %d, connected=%v", e.name, version, connected), func() error {
		code, r := e.readyz(t)
		if code != http.StatusOK || r.ConfigVersion != version || r.Connected == nil || *r.Connected != connected {
			return fmt.Errorf("readyz %d %+v", code, r)
		}
		return nil
	})
}

func writeFile(t *testing.T, path, doc string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBerryctl(t *testing.T) {
	berryctl(t, nil, "help") // build it first
	sim := startSim(t, upstreamsim.Options{Name: "sim-a", APIKey: "sk-sim-a-secret"})
	dir := t.TempDir()
	cp := startSecuredCP(t, filepath.Join(dir, "berry.db"), "")
	e := startCachedEdge(t, cp.addr, "ctl-edge", t.TempDir())
	seed := writeFile(t, filepath.Join(dir, "seed.toml"), configTOML(sim.URL(), sim.URL(), "a"))
	bad := writeFile(t, filepath.Join(dir, "bad.toml"), configTOML(sim.URL(), sim.URL(), "a")+
		"\n[models.bad]\nname = \"bad\"\nstrategy = \"nope\"\n")
	server := []string{"BERRY_SERVER=" + cp.addr}
	admin := append([]string{"BERRY_TOKEN=" + adminToken}, server...)
	read := append([]string{"BERRY_TOKEN=" + readToken}, server...)
	var keyID, key string
	keyLine := regexp.MustCompile(`created key (\S+) \(version \d+\)\n(sk-berry-\S+)`)

	steps := []struct {
		name       string
		env        []string
		args       []string
		wantCode   int
		wantOut    []string
		wantErr    string // the one line on stderr
		notOut     []string
		after      func(t *testing.T, stdout string)
		skipSecret bool
	}{
		{name: "import", env: admin, args: []string{"import", seed}, wantOut: []string{"version 1"}},
		{name: "get providers table", env: read, args: []string{"get", "providers"},
			wantOut: []string{"ID", "sim-a", "Simulator A", "set"}, notOut: []string{"sk-sim-a-secret"}},
		{name: "get providers json", env: read, args: []string{"get", "providers", "-o", "json"},
			notOut: []string{"sk-sim-a-secret"}, after: func(t *testing.T, out string) {
				var v struct {
					Providers []struct {
						ID, APIKey string
						APIKeySet  bool `json:"apiKeySet"`
					}
				}
				if err := json.Unmarshal([]byte(out), &v); err != nil || len(v.Providers) != 2 || !v.Providers[0].APIKeySet || v.Providers[0].APIKey != "" {
					t.Fatalf("-o json: %v %+v", err, v)
				}
			}},
		{name: "get models yaml", env: read, args: []string{"-o", "yaml", "get", "models"}, wantOut: []string{"id: chat"}},
		{name: "get one model", env: read, args: []string{"get", "models", "other"}, wantOut: []string{"other", "sim-a/up-a"}},
		{name: "get users", env: read, args: []string{"get", "users"}, wantOut: []string{"alice", "chat"}, notOut: []string{userToken}},
		{name: "get settings toml", env: read, args: []string{"get", "settings", "-o", "toml"}, wantOut: []string{"[settings]", "max_retries = 2"}},
		{name: "get unknown kind", env: read, args: []string{"get", "pods"}, wantCode: 1, wantErr: `get "pods"`},
		{name: "get missing provider", env: read, args: []string{"get", "providers", "ghost"}, wantCode: 1, wantErr: "not found"},
		{name: "export redacted", env: read, args: []string{"export"}, wantOut: []string{"[providers.sim-a]", "[users.alice]"}, notOut: []string{"sk-sim-a-secret", userToken, "token_sha256"}},
		{name: "export secrets needs admin", env: read, args: []string{"export", "--include-secrets"}, wantCode: 1, wantErr: "permission denied"},
		{name: "export secrets as admin", env: admin, args: []string{"export", "--include-secrets"}, wantOut: []string{`api_key = "sk-sim-a-secret"`}, skipSecret: true},
		{name: "read role cannot write", env: read, args: []string{"import", seed}, wantCode: 1, wantErr: "permission denied"},
		{name: "no token", env: server, args: []string{"versions"}, wantCode: 1, wantErr: "authentication failed"},
		{name: "wrong token", env: append([]string{"BERRY_TOKEN=nope"}, server...), args: []string{"versions"}, wantCode: 1, wantErr: "authentication failed"},
		{name: "unreachable", env: []string{"BERRY_TOKEN=x"}, args: []string{"--server", freeAddr(t), "versions"}, wantCode: 1, wantErr: "cannot reach the control plane"},
		{name: "invalid config names table and field", env: admin, args: []string{"apply", "-f", bad}, wantCode: 1,
			wantErr: `rejected: invalid config: models.bad.strategy: unknown strategy "nope"`},
		{name: "keys create", env: admin, args: []string{"keys", "create", "--name", "ci", "--models", "chat", "--expires", "24h", "--rpm", "100"},
			wantOut: []string{"created key"}, skipSecret: true, after: func(t *testing.T, out string) {
				m := keyLine.FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("no key in %q", out)
				}
				keyID, key = m[1], m[2]
			}},
		{name: "stale write", env: admin, args: []string{"apply", "-f", seed, "--expected-version", "1"}, wantCode: 1, wantErr: "stale write refused"},
		{name: "versions", env: read, args: []string{"versions"}, wantOut: []string{"VERSION", "admin", "create key"}},
		{name: "versions json", env: read, args: []string{"versions", "-o", "json", "--limit", "1"}, after: func(t *testing.T, out string) {
			var v struct {
				Versions []struct{ Version, Author string }
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil || len(v.Versions) != 1 || v.Versions[0].Version != "2" || v.Versions[0].Author != "admin" {
				t.Fatalf("versions -o json --limit 1: %v %+v", err, v)
			}
		}},
		{name: "diff", env: read, args: []string{"diff", "1", "2"}, wantOut: []string{"+ users.key-"}},
		{name: "diff bad args", env: read, args: []string{"diff", "1"}, wantCode: 1, wantErr: "usage: berryctl diff A B"},
		{name: "edges", env: read, args: []string{"edges"}, wantOut: []string{"ctl-edge", "connected"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, out, errOut := berryctl(t, st.env, st.args...)
			if code != st.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, st.wantCode, out, errOut)
			}
			for _, w := range st.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range st.notOut {
				if strings.Contains(out, w) {
					t.Errorf("stdout shows %q:\n%s", w, out)
				}
			}
			if st.wantCode != 0 {
				lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
				if len(lines) != 1 || !strings.HasPrefix(lines[0], "berryctl: ") || !strings.Contains(lines[0], st.wantErr) {
					t.Errorf("stderr %q, want one line containing %q", errOut, st.wantErr)
				}
			}
			if !st.skipSecret && key != "" && strings.Contains(out+errOut, key) {
				t.Errorf("output shows the API key again")
			}
			if st.after != nil {
				st.after(t, out)
			}
		})
	}
	if key == "" {
		t.Fatal("no key created")
	}

	// The created key works on the edge once it has the new version, and stops
	// working when disabled.
	e.waitReady(t, 2, true)
	body := `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`
	if r := chat(t, e.url, key, body); r.status != http.StatusOK {
		t.Fatalf("new key: %d %s", r.status, r.body)
	}
	if code, out, errOut := berryctl(t, admin, "keys", "disable", keyID); code != 0 || !strings.Contains(out, "disabled (version 3)") {
		t.Fatalf("keys disable: %d %s %s", code, out, errOut)
	}
	e.waitReady(t, 3, true)
	if r := chat(t, e.url, key, body); r.status != http.StatusUnauthorized {
		t.Fatalf("disabled key: %d %s", r.status, r.body)
	}

	// Rollback to 1 removes the key as a new version 4.
	if code, out, errOut := berryctl(t, admin, "rollback", "1"); code != 0 || !strings.Contains(out, "new version 4") {
		t.Fatalf("rollback: %d %s %s", code, out, errOut)
	}
	e.waitReady(t, 4, true)
	if code, out, _ := berryctl(t, read, "diff", "1", "4"); code != 0 || !strings.Contains(out, "are the same") {
		t.Fatalf("diff 1 4 after rollback: %s", out)
	}
	fs, err := cp.admin.FleetStatus(context.Background(), &berryv1.FleetStatusRequest{})
	if err != nil || !fs.RolledOut || fs.CurrentVersion != 4 {
		t.Fatalf("fleet status: %v, %v", fs, err)
	}
	// Secrets never reach the control plane's or the edge's logs.
	for _, s := range []string{key, "sk-sim-a-secret", userToken, adminToken, readToken, edgeToken} {
		if strings.Contains(cp.output(), s) || strings.Contains(e.output(), s) {
			t.Errorf("a log shows secret %q", s)
		}
	}
}

// The control plane killed with SIGKILL in the middle of a stream of writes loses
// none that it acknowledged.
func TestSIGKILLLosesNoAcknowledgedWrite(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "berry.db")
	cp := startSecuredCP(t, data, "")
	seed := configTOML("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", "a")
	if _, err := cp.admin.ApplyConfig(context.Background(), &berryv1.ApplyConfigRequest{Source: &berryv1.ApplyConfigRequest_Toml{Toml: seed}}); err != nil {
		t.Fatal(err)
	}
	type ack struct{ version, value uint64 }
	var (
		mu    sync.Mutex
		acked []ack
	)
	const writers = 4
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(1); i <= 500 && ctx.Err() == nil; i++ {
				value := uint64(w)*1000 + i // every write is distinguishable
				r, err := cp.admin.UpdateSettings(ctx, &berryv1.UpdateSettingsRequest{
					Settings: &berryv1.Settings{RequestTimeoutSeconds: uint32(value)}})
				if err != nil {
					return // the control plane is gone
				}
				mu.Lock()
				acked = append(acked, ack{r.Version, value})
				mu.Unlock()
			}
		}()
	}
	eventually(t, "some writes acknowledged", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 40 {
			return fmt.Errorf("%d acked", len(acked))
		}
		return nil
	})
	if err := cp.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-cp.done
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d writes acknowledged before SIGKILL", len(acked))

	// Reopen the file and check every acknowledged write is there, as acknowledged.
	cp2 := startSecuredCP(t, data, "")
	cur, err := cp2.admin.GetCurrentVersion(context.Background(), &berryv1.GetCurrentVersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acked {
		if a.version > cur.Version {
			t.Fatalf("acknowledged version %d missing: current is %d", a.version, cur.Version)
		}
		v, err := cp2.admin.GetVersion(context.Background(), &berryv1.GetVersionRequest{Version: a.version})
		if err != nil {
			t.Fatalf("acknowledged version %d: %v", a.version, err)
		}
		if got := v.Version.Config.GetSettings().GetRequestTimeoutSeconds(); uint64(got) != a.value {
			t.Fatalf("version %d holds %d, acknowledged with %d", a.version, got, a.value)
		}
	}
	// Versions are gap-free: 1..current all present.
	vs, err := cp2.admin.ListVersions(context.Background(), &berryv1.ListVersionsRequest{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(vs.Versions)) != cur.Version {
		t.Fatalf("%d versions listed, current is %d", len(vs.Versions), cur.Version)
	}
}

func TestEdgeServesFromCacheWhileControlPlaneIsDown(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{Name: "sim-a", APIKey: "sk-sim-a-secret"})
	dir := t.TempDir()
	data, cache := filepath.Join(dir, "berry.db"), filepath.Join(dir, "cache")
	cp := startSecuredCP(t, data, "")
	if _, err := cp.admin.ApplyConfig(context.Background(), &berryv1.ApplyConfigRequest{
		Source: &berryv1.ApplyConfigRequest_Toml{Toml: configTOML(sim.URL(), sim.URL(), "a")}}); err != nil {
		t.Fatal(err)
	}
	e := startCachedEdge(t, cp.addr, "survivor", cache)
	e.waitReady(t, 1, true)
	e.stop(t)
	cp.stop(t)

	// Control plane down: the restarted edge serves the cached version at once.
	e = startCachedEdge(t, cp.addr, "survivor", cache)
	code, r := e.readyz(t)
	if code != http.StatusOK || r.ConfigVersion != 1 || r.Connected == nil || *r.Connected {
		t.Fatalf("restarted edge without control plane: readyz %d %+v", code, r)
	}
	body := `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`
	if res := chat(t, e.url, userToken, body); res.status != http.StatusOK {
		t.Fatalf("served from cache: %d %s", res.status, res.body)
	}

	// The control plane comes back (same address): the edge reconnects on its own
	// and takes new versions again.
	cp = startSecuredCP(t, data, cp.addr)
	e.waitReady(t, 1, true)
	if _, err := cp.admin.UpdateSettings(context.Background(), &berryv1.UpdateSettingsRequest{Settings: &berryv1.Settings{MaxRetries: 1}}); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, 2, true)
}

func TestStandaloneMode(t *testing.T) {
	simA := startSim(t, upstreamsim.Options{Name: "sim-a", APIKey: "sk-sim-a-secret"})
	simB := startSim(t, upstreamsim.Options{Name: "sim-b", APIKey: "sk-sim-b-secret"})
	path := filepath.Join(t.TempDir(), "berry.toml")
	writeFile(t, path, configTOML(simA.URL(), simB.URL(), "a"))
	addr := freeAddr(t)
	p := startProc(t, "standalone edge", "berry-edge", "--listen", addr, "--config", path)
	e := &edge{proc: p, url: "http://" + addr}
	e.waitVersion(t, 1)
	// No control plane, so /readyz claims no connection either way.
	if code, r := e.readyz(t); code != http.StatusOK || r.ConfigVersion != 1 || r.Connected != nil {
		t.Fatalf("standalone readyz: %d %+v", code, r)
	}
	body := `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`
	served := func() string {
		r := chat(t, e.url, userToken, body)
		if r.status != http.StatusOK {
			t.Fatalf("chat: %d %s", r.status, r.body)
		}
		for _, name := range []string{"sim-a", "sim-b"} {
			if strings.Contains(r.content, name) {
				return name
			}
		}
		return r.content
	}
	if got := served(); got != "sim-a" {
		t.Fatalf("served by %q, want sim-a", got)
	}
	// An invalid edit is logged and ignored.
	writeFile(t, path, "[models.chat\n")
	eventually(t, "invalid edit logged", func() error {
		if !strings.Contains(p.output(), "config file change ignored") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if v, err := e.configVersion(); err != nil || v != 1 || served() != "sim-a" {
		t.Fatalf("after invalid edit: version %d (%v)", v, err)
	}
	// A valid edit is picked up.
	writeFile(t, path, configTOML(simA.URL(), simB.URL(), "b"))
	e.waitVersion(t, 2)
	if got := served(); got != "sim-b" {
		t.Fatalf("after edit served by %q, want sim-b", got)
	}
}

func TestControlPlaneStartupRules(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no tokens on a non-loopback address", []string{"--data", filepath.Join(dir, "a.db"), "--grpc-listen", "0.0.0.0:0"}, "--insecure"},
		{"client CA without a certificate", []string{"--data", filepath.Join(dir, "b.db"), "--grpc-listen", "127.0.0.1:0", "--tls-client-ca", "x.pem"}, "--tls-client-ca needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProc(t, "controlplane", "berry-controlplane", tt.args...)
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				t.Fatal("control plane did not exit")
			}
			if p.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(p.output(), tt.want) {
				t.Fatalf("exit %d, output %q; want failure naming %q", p.cmd.ProcessState.ExitCode(), p.output(), tt.want)
			}
		})
	}
	t.Run("second control plane on the same file fails fast", func(t *testing.T) {
		data := filepath.Join(dir, "shared.db")
		startSecuredCP(t, data, "")
		p := startProc(t, "second controlplane", "berry-controlplane", "--data", data, "--grpc-listen", freeAddr(t),
			"--lock-timeout", "300ms")
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			t.Fatal("second control plane did not exit")
		}
		if p.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(p.output(), "locked by another process") {
			t.Fatalf("exit %d, output %q", p.cmd.ProcessState.ExitCode(), p.output())
		}
	})
}

func TestBackupAndRestore(t *testing.T) {
	dir := t.TempDir()
	cp := startSecuredCP(t, filepath.Join(dir, "berry.db"), "")
	seed := configTOML("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", "a")
	for i := 0; i < 3; i++ {
		if _, err := cp.admin.ApplyConfig(context.Background(), &berryv1.ApplyConfigRequest{Source: &berryv1.ApplyConfigRequest_Toml{Toml: seed}}); err != nil {
			t.Fatal(err)
		}
	}
	backup := filepath.Join(dir, "backup.db")
	out, err := exec.Command(filepath.Join(binDir, "berry-controlplane"), "backup", "--out", backup,
		"--server", cp.addr, "--token", adminToken).CombinedOutput()
	if err != nil {
		t.Fatalf("hot backup: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(binDir, "berry-controlplane"), "backup", "--out", filepath.Join(dir, "x.db"),
		"--server", cp.addr, "--token", readToken).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "PermissionDenied") {
		t.Fatalf("backup with the read token: %v\n%s", err, out)
	}
	restored := filepath.Join(dir, "restored.db")
	if out, err := exec.Command(filepath.Join(binDir, "berry-controlplane"), "restore", "--from", backup, "--data", restored).CombinedOutput(); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	cp2 := startSecuredCP(t, restored, "")
	v, err := cp2.admin.GetCurrentVersion(context.Background(), &berryv1.GetCurrentVersionRequest{})
	if err != nil || v.Version != 3 {
		t.Fatalf("restored control plane: version %d, %v; want 3", v.GetVersion(), err)
	}
}
