package main

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	"github.com/berry-gateway/berry/controlplane/internal/server"
	"github.com/berry-gateway/berry/controlplane/internal/store"
)

const usageSeed = `
[providers.openai]
name = "OpenAI"
base_url = "https://api.openai.com/v1"
api_key = "sk-test"
models = ["gpt-4o"]

[models.gpt]
name = "gpt"
[[models.gpt.backends]]
provider = "openai"
model = "gpt-4o"

[users.alice]
token = "alice-token"
[users.alice.rate_limit]
requests_per_day = 1000
[users.alice.budget]
usd_per_day = 2.5

[users.bob]
token = "bob-token"
`

// serveUsage runs a control plane on loopback whose ledger holds a few rows of the
// current hour.
func serveUsage(t *testing.T, token string) string {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "berry.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Now().Unix() / 3600
	if err := st.WriteUsage(context.Background(), &store.UsageBatch{Usage: map[store.UsageKey]store.UsageCounters{
		{Hour: hour, Key: "alice", Model: "gpt", Provider: "openai", UpstreamModel: "gpt-4o"}: {Requests: 3, InputTokens: 300, OutputTokens: 30, CostMicroUSD: 1_250_000, Estimated: 1},
		{Hour: hour, Key: "bob", Model: "gpt", Provider: "openai", UpstreamModel: "gpt-4o"}:   {Requests: 1, InputTokens: 10, OutputTokens: 5, CachedTokens: 2, CostMicroUSD: 40},
	}}); err != nil {
		t.Fatal(err)
	}
	srv := server.New(st, server.Options{})
	if err := srv.Bootstrap(context.Background(), []byte(usageSeed), "seed"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Start(context.Background())
	gs := srv.NewGRPCServer(auth.NewPolicy([]auth.Credential{{Name: "read", Role: auth.RoleRead, Token: token}}, server.ReadMethods))
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

func TestUsageCommand(t *testing.T) {
	clearEnv(t)
	const token = "usage-read-token"
	addr := serveUsage(t, token)
	run := func(args ...string) (int, string, string) {
		return berryctl(append([]string{"--server", addr, "--token", token}, args...)...)
	}
	code, out, errOut := run("usage", "--by", "model,key", "-o", "csv")
	want := "key,model,requests,prompt_tokens,completion_tokens,cached_tokens,reasoning_tokens,cost_usd,estimated\n" +
		"alice,gpt,3,300,30,0,0,1.250000,1\n" +
		"bob,gpt,1,10,5,2,0,0.000040,0\n"
	if code != 0 || out != want {
		t.Fatalf("usage --by model,key -o csv: exit %d (%s)\n%s\nwant\n%s", code, errOut, out, want)
	}
	code, out, errOut = run("usage")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "REQUESTS") || !strings.HasPrefix(lines[1], "4 ") ||
		!strings.Contains(lines[1], "1.250040") {
		t.Fatalf("usage: exit %d (%s)\n%s", code, errOut, out)
	}
	code, out, errOut = run("usage", "--key", "alice", "--by", "hour,backend", "--since", "2h", "--until", time.Now().Add(time.Hour).Format(time.RFC3339), "-o", "json")
	var r struct {
		Rows []struct {
			Backend, Hour, Key string
			Requests           string // uint64 in proto JSON
		}
	}
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil || len(r.Rows) != 1 || r.Rows[0].Backend != "openai/gpt-4o" ||
		r.Rows[0].Hour == "" || r.Rows[0].Key != "" || r.Rows[0].Requests != "3" {
		t.Fatalf("usage -o json: exit %d (%s), %v\n%s", code, errOut, err, out)
	}
	if code, _, errOut := run("usage", "--by", "tenant"); code != 1 || !strings.Contains(errOut, `--by "tenant"`) {
		t.Fatalf("--by tenant: exit %d, %s", code, errOut)
	}
	if code, _, errOut := run("usage", "--since", "yesterday"); code != 1 || !strings.Contains(errOut, "--since") {
		t.Fatalf("--since yesterday: exit %d, %s", code, errOut)
	}
	if code, _, errOut := run("edges", "-o", "csv"); code != 1 || !strings.Contains(errOut, "-o csv fits usage and quotas only") {
		t.Fatalf("edges -o csv: exit %d, %s", code, errOut)
	}
}

func TestQuotasCommand(t *testing.T) {
	clearEnv(t)
	const token = "quotas-read-token"
	addr := serveUsage(t, token)
	code, out, errOut := berryctl("--server", addr, "--token", token, "quotas", "-o", "csv")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || lines[0] != "key,limit,max,used,outstanding,left,window_ends" ||
		!strings.HasPrefix(lines[1], "alice,requests/day,1000,0,0,1000,") || !strings.HasPrefix(lines[2], "alice,usd/day,2.500000,0.000000,0.000000,2.500000,") {
		t.Fatalf("quotas -o csv: exit %d (%s)\n%s", code, errOut, out)
	}
	code, out, errOut = berryctl("--server", addr, "--token", token, "quotas", "--key", "bob")
	if code != 0 || !strings.Contains(out, "KEY") || !strings.Contains(out, "bob") {
		t.Fatalf("quotas --key bob: exit %d (%s)\n%s", code, errOut, out)
	}
	if code, _, errOut := berryctl("--server", addr, "--token", token, "quotas", "--key", "carol"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("quotas --key carol: exit %d, %s", code, errOut)
	}
}
