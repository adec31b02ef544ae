package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The binary serves the admin API (Connect JSON, the role tokens) and the console on
// --http-listen, beside the metrics.
func TestServeAPIAndConsole(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed.toml")
	if err := os.WriteFile(seed, []byte(seedTOML), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs := freeAddrs(t, 2)
	cmd := command("--data", filepath.Join(dir, "berry.db"), "--grpc-listen", addrs[0], "--http-listen", addrs[1],
		"--bootstrap", seed, "--admin-token", "api-admin", "--read-token", "api-read", "--shutdown-delay", "0")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("control plane output:\n%s", out.String())
		}
	})
	base := "http://" + addrs[1]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	post := func(method, token, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/berry.v1.AdminService/"+method, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for {
		code, body := post("GetCurrentVersion", "api-read", `{}`)
		if code == http.StatusOK {
			if !strings.Contains(body, `"version":"1"`) {
				t.Fatalf("current version: %s", body)
			}
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("control plane exited: %v", err)
		case <-ctx.Done():
			t.Fatalf("API not answering: %d %s", code, body)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if code, body := post("Rollback", "api-read", `{"toVersion":"1"}`); code != http.StatusForbidden || !strings.Contains(body, "permission_denied") {
		t.Fatalf("read token writing: %d %s", code, body)
	}
	if code, body := post("GetConfig", "wrong", `{}`); code != http.StatusUnauthorized || !strings.Contains(body, "unauthenticated") {
		t.Fatalf("wrong token: %d %s", code, body)
	}
	if code, body := post("CreateKey", "api-admin", `{"userId":"k1","name":"ci","options":{"message":"from the test"}}`); code != http.StatusOK || !strings.Contains(body, `"version":"2"`) {
		t.Fatalf("admin write: %d %s", code, body)
	}
	if code, body := post("ListVersions", "api-read", `{}`); code != http.StatusOK || !strings.Contains(body, `"author":"admin"`) || !strings.Contains(body, "from the test") {
		t.Fatalf("versions: %d %s", code, body)
	}

	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/" || !strings.Contains(string(b), "<html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("console: %d at %s, %v", resp.StatusCode, resp.Request.URL, resp.Header)
	}
}
