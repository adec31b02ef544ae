package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/pkg/buildinfo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// clearEnv keeps the tests from using the BERRY_ variables of whoever runs them.
func clearEnv(t *testing.T) {
	for _, k := range []string{"BERRY_SERVER", "BERRY_TOKEN", "BERRY_TOKEN_FILE"} {
		t.Setenv(k, "")
	}
}

// berryctl runs a command line as main does: its exit code, stdout and stderr.
func berryctl(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := runMain(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpExitsZero(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"versions", "--help"}} {
		code, out, errOut := berryctl(args...)
		if code != 0 || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
		for _, w := range []string{"import FILE", "apply -f FILE", "--dry-run", "version [--client]", "--version", "scores"} {
			if !strings.Contains(out, w) {
				t.Errorf("%v: usage lacks %q", args, w)
			}
		}
	}
	if code, _, errOut := berryctl("--no-such-flag"); code != 1 || !strings.Contains(errOut, "see berryctl --help") {
		t.Errorf("a bad flag: exit %d, stderr %q", code, errOut)
	}
}

func TestVersionFlag(t *testing.T) {
	clearEnv(t)
	want := "berryctl " + buildinfo.Get().String() + "\n"
	for _, args := range [][]string{{"--version"}, {"-version"}, {"--server", "127.0.0.1:1", "--version"}} {
		if code, out, errOut := berryctl(args...); code != 0 || out != want || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", args, code, out, errOut, want)
		}
	}
	// --version N still picks the version export shows.
	o, pos, err := parse([]string{"export", "--version", "3"})
	if err != nil || o.showVersion || o.version != 3 || strings.Join(pos, " ") != "export" {
		t.Fatalf("export --version 3: %+v %v %v", o, pos, err)
	}
}

func TestVersionCommand(t *testing.T) {
	clearEnv(t)
	const token = "version-admin-token"
	addr := serve(t, token)
	b := buildinfo.Get()
	code, out, errOut := berryctl("--server", addr, "--token", token, "version")
	if code != 0 {
		t.Fatalf("version: exit %d, %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != "client: berryctl "+b.String() ||
		!strings.HasPrefix(lines[1], "server: berry-controlplane "+b.String()+" at "+addr+", data file lineage ") {
		t.Fatalf("version:\n%s", out)
	}
	code, out, errOut = berryctl("--server", addr, "--token", token, "version", "-o", "json")
	var v struct {
		Client, Server struct{ Version, GoVersion, Lineage string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Client.Version != b.Version || v.Server.Version != b.Version ||
		v.Server.GoVersion != b.GoVersion || v.Server.Lineage == "" || v.Client.Lineage != "" {
		t.Fatalf("version -o json: exit %d %+v\n%s%s", code, v, out, errOut)
	}
	// The client's version needs no control plane; the server's does.
	dead := "127.0.0.1:1"
	if code, out, _ := berryctl("--server", dead, "version", "--client"); code != 0 || out != "client: berryctl "+b.String()+"\n" {
		t.Fatalf("version --client: exit %d %q", code, out)
	}
	if code, out, errOut := berryctl("--server", dead, "--timeout", "2s", "version"); code != 1 ||
		!strings.HasPrefix(out, "client: ") || !strings.Contains(errOut, "cannot reach the control plane") {
		t.Fatalf("version, server down: exit %d %q %q", code, out, errOut)
	}
}

// apply/import --dry-run show what would change and write nothing; an invalid config
// exits 1 with every problem on one line, as the write's refusal does.
func TestDryRun(t *testing.T) {
	clearEnv(t)
	const token = "dry-run-admin-token"
	addr := serve(t, token)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const seed = `
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
	seedFile := file("seed.toml", seed)
	changed := file("changed.toml", strings.Replace(seed, "weight = 1", "weight = 3", 1))
	bad := file("bad.toml", strings.Replace(seed, "weight = 1", "weight = -1", 1)+"\n[models.other]\nname = \"other\"\nstrategy = \"nope\"\n")
	proto := file("changed.json", `{"providers":[{"id":"openai","name":"OpenAI","baseUrl":"https://api.openai.com/v1","apiKey":"sk-provider-secret","models":["gpt-4o"],"enabled":true}]}`)
	ctl := func(args ...string) (int, string, string) {
		return berryctl(append([]string{"--server", addr, "--token", token}, args...)...)
	}
	if code, _, errOut := ctl("import", seedFile); code != 0 {
		t.Fatalf("import: %s", errOut)
	}
	versions := func() string {
		t.Helper()
		_, out, _ := ctl("versions", "-o", "json")
		return out
	}
	before := versions()

	code, out, errOut := ctl("apply", "--dry-run", "-f", changed)
	if code != 0 || !strings.Contains(out, "is valid: 1 change(s) against version 1 (dry run, nothing written)") ||
		!strings.Contains(out, "~ models.demo.backends[0].weight: 1 -> 3") {
		t.Fatalf("apply --dry-run: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := ctl("import", seedFile, "--dry-run"); code != 0 || !strings.Contains(out, "no changes against version 1") {
		t.Fatalf("import --dry-run of the same config: exit %d %s", code, out)
	}
	if code, out, errOut := ctl("apply", "--dry-run", "-f", proto); code != 0 || !strings.Contains(out, "- models.demo") {
		t.Fatalf("apply --dry-run of the proto form: exit %d\n%s%s", code, out, errOut)
	}

	const wantErr = `berryctl: rejected: invalid config: models.demo.backends[0].weight: must be > 0, got -1; models.other.strategy: unknown strategy "nope"`
	for _, args := range [][]string{{"import", "--dry-run", bad}, {"apply", "-f", bad}} {
		code, out, errOut := ctl(args...)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, wantErr) || strings.Contains(errOut, ":;") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want one line starting %q", args, code, out, errOut, wantErr)
		}
	}
	code, out, errOut = ctl("import", "--dry-run", bad, "-o", "json")
	var r struct {
		Valid  bool
		Errors []struct{ Path, Message string }
	}
	if code != 1 || json.Unmarshal([]byte(out), &r) != nil || r.Valid || len(r.Errors) != 3 || !strings.HasPrefix(errOut, "berryctl: rejected: ") {
		t.Fatalf("import --dry-run -o json of an invalid config: exit %d %+v\n%s%s", code, r, out, errOut)
	}
	if code, _, errOut := ctl("apply", "--dry-run", "-f", changed, "--expected-version", "7"); code != 1 || !strings.Contains(errOut, "stale write refused") {
		t.Fatalf("stale dry run: exit %d %s", code, errOut)
	}
	if code, _, errOut := ctl("rollback", "1", "--dry-run"); code != 1 || !strings.Contains(errOut, "--dry-run: only import and apply") {
		t.Fatalf("rollback --dry-run: exit %d %s", code, errOut)
	}
	if after := versions(); after != before {
		t.Fatalf("dry runs wrote: versions before\n%s\nafter\n%s", before, after)
	}
}

// A control plane that sends a validation error a problem a line still shows as one
// line, without a stray separator.
func TestOneLineJoinsLines(t *testing.T) {
	for msg, want := range map[string]string{
		"invalid config:\nmodels.demo.x: bad\nusers.u.y: worse": "rejected: invalid config: models.demo.x: bad; users.u.y: worse",
		"invalid config: models.demo.x: bad":                    "rejected: invalid config: models.demo.x: bad",
		"first\n\nsecond\n":                                     "rejected: first; second",
	} {
		if got := oneLine(status.Error(codes.InvalidArgument, msg)); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", msg, got, want)
		}
	}
}
