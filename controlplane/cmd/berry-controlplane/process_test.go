package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/buildinfo"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// runMainEnv makes this test binary run the control plane's main instead of the
// tests, so that tests can run it as a process of its own (exit codes, signals)
// without building it.
const runMainEnv = "BERRY_CONTROLPLANE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// command returns berry-controlplane args as a process, its environment free of
// the BERRY_ variables of whoever runs the tests.
func command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BERRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, runMainEnv+"=1")
	return cmd
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// --help exits 0 and lists the subcommands and the serve flags; --version prints the
// build; a mistake exits 1 pointing at --help.
func TestHelpAndVersion(t *testing.T) {
	version := "berry-controlplane " + buildinfo.Get().String() + "\n"
	tests := []struct {
		args     []string
		code     int
		stdout   []string
		exactOut string
		stderr   string
	}{
		{args: []string{"--help"}, stdout: []string{"backup --out FILE", "restore --from FILE", "version", "-http-listen", "-metrics-token-file", "-shutdown-delay", "-grpc-listen"}},
		{args: []string{"-h"}, stdout: []string{"backup", "restore", "-http-listen"}},
		{args: []string{"help"}, stdout: []string{"backup", "restore", "-http-listen"}},
		{args: []string{"backup", "--help"}, stdout: []string{"Usage: berry-controlplane backup", "-out", "-server", "-token-file"}},
		{args: []string{"restore", "-h"}, stdout: []string{"Usage: berry-controlplane restore", "-from", "-data"}},
		{args: []string{"--version"}, exactOut: version},
		{args: []string{"version"}, exactOut: version},
		{args: []string{"bakup", "--out", "x"}, code: 1, stderr: `unknown command "bakup" (see berry-controlplane --help)`},
		{args: []string{"--no-such-flag"}, code: 1, stderr: "flag provided but not defined: -no-such-flag (see berry-controlplane --help)"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cmd := command(tt.args...)
			cmd.Dir = t.TempDir() // nothing may be created by these
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if code := exitCode(t, cmd.Run()); code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if tt.exactOut != "" && stdout.String() != tt.exactOut {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.exactOut)
			}
			if tt.code == 0 && stderr.Len() > 0 {
				t.Errorf("stderr %q", stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.stderr)
			}
			if entries, _ := os.ReadDir(cmd.Dir); len(entries) > 0 {
				t.Errorf("left %v behind", entries)
			}
		})
	}
}

// freeAddrs returns n distinct loopback addresses that were free a moment ago.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		// Held until all are chosen, so that no two are the same port.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs
}

const seedTOML = `
[providers.openai]
name = "OpenAI"
base_url = "https://api.openai.com/v1"
api_key = "sk-provider-secret"
models = ["gpt-4o"]

[models.demo]
name = "demo"
[[models.demo.backends]]
provider = "openai"
model = "gpt-4o"
weight = 1
`

func getMetrics(t *testing.T, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b.Bytes()
}

// The binary serves its metrics on --http-listen behind the metrics token, with the
// build, runtime and process metrics; on SIGTERM it reports NOT_SERVING while still
// serving for --shutdown-delay, then ends the edge streams and exits 0.
func TestServeMetricsAndDrain(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed.toml")
	tokenFile := filepath.Join(dir, "metrics-token")
	const metricsToken = "metrics-secret-token"
	for path, content := range map[string]string{seed: seedTOML, tokenFile: metricsToken + "\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addrs := freeAddrs(t, 2)
	grpcAddr, httpAddr := addrs[0], addrs[1]
	const delay = 1500 * time.Millisecond
	cmd := command("--data", filepath.Join(dir, "berry.db"), "--grpc-listen", grpcAddr, "--http-listen", httpAddr,
		"--metrics-token-file", tokenFile, "--bootstrap", seed, "--shutdown-delay", delay.String())
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("control plane output:\n%s", out.String())
		}
	})

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	health := healthpb.NewHealthClient(conn)
	for {
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		select {
		case <-exited:
			t.Fatalf("control plane exited: %v", waitErr)
		case <-ctx.Done():
			t.Fatalf("control plane not serving: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}

	url := "http://" + httpAddr + "/metrics"
	if code, body := getMetrics(t, url, ""); code != http.StatusUnauthorized || bytes.Contains(body, []byte("berry_")) {
		t.Fatalf("metrics without the token: %d %s", code, body)
	}
	code, body := getMetrics(t, url, metricsToken)
	if code != http.StatusOK {
		t.Fatalf("metrics with the token: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b := buildinfo.Get()
	info := mfs["berry_build_info"].GetMetric()
	if len(info) != 1 || info[0].GetGauge().GetValue() != 1 {
		t.Fatalf("berry_build_info %v", info)
	}
	labels := map[string]string{}
	for _, l := range info[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["version"] != b.Version || labels["revision"] != b.Revision || labels["go_version"] != b.GoVersion || len(labels) != 3 {
		t.Fatalf("berry_build_info labels %v, build %+v", labels, b)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes",
		"berry_controlplane_config_version", "berry_controlplane_store_update_duration_seconds", "grpc_server_handled_total"} {
		if mfs[name] == nil {
			t.Errorf("no %s in the scrape", name)
		}
	}
	if v := mfs["berry_controlplane_config_version"].GetMetric(); len(v) != 1 || v[0].GetGauge().GetValue() != 1 {
		t.Errorf("config version %v, want 1", v)
	}
	if bytes.Contains(body, []byte("sk-provider-secret")) || bytes.Contains(body, []byte(metricsToken)) {
		t.Error("a secret in the metrics")
	}
	t.Run("promtool", func(t *testing.T) { promtoolCheck(t, body) })

	// An edge's stream, and a health watch as a load balancer would hold.
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	edge, err := berryv1.NewEdgeServiceClient(conn).Sync(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := edge.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Hello{Hello: &berryv1.Hello{EdgeId: "e"}}}); err != nil {
		t.Fatal(err)
	}
	if msg, err := edge.Recv(); err != nil || msg.GetSnapshot().GetVersion() != 1 {
		t.Fatalf("edge's first message %v, %v", msg, err)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch, err := health.Watch(wctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch: %v, %v", r, err)
	}

	signaled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health after SIGTERM: %v, %v", r, err)
	}
	stopWatch()
	if _, err := berryv1.NewAdminServiceClient(conn).GetCurrentVersion(ctx, &berryv1.GetCurrentVersionRequest{}); err != nil {
		t.Fatalf("a call during the shutdown delay: %v", err)
	}
	if code, _ := getMetrics(t, url, metricsToken); code != http.StatusOK {
		t.Fatalf("metrics during the shutdown delay: %d", code)
	}
	if d := time.Since(signaled); d >= delay {
		t.Fatalf("the checks took %v, longer than the delay: they prove nothing", d)
	}
	var recvErr error
	for recvErr == nil {
		_, recvErr = edge.Recv() // scores may come before the end
	}
	if status.Code(recvErr) != codes.Unavailable || time.Since(signaled) < delay {
		t.Fatalf("edge stream ended %v after SIGTERM with %v; want UNAVAILABLE after %v", time.Since(signaled), recvErr, delay)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("exit: %v", waitErr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still running 15s after SIGTERM")
	}
	logs := out.String()
	order := []string{"shutting down", "health reports NOT_SERVING", "ending edge streams", "stopped"}
	last := -1
	for _, w := range order {
		i := strings.Index(logs, w)
		if i < last {
			t.Fatalf("log %q missing or out of order %v:\n%s", w, order, logs)
		}
		last = i
	}
}

// promtoolCheck runs Prometheus's own linter on a scrape.
func promtoolCheck(t *testing.T, scrape []byte) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: install it (Debian: apt-get install prometheus) to check the exposition with `promtool check metrics`")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
