package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keys create sends every limit and budget flag; the control plane stores them,
// refuses bad ones naming the field, and get users shows them.
func TestKeysCreateLimitsAndBudget(t *testing.T) {
	clearEnv(t)
	const token = "keys-admin-token"
	addr := serve(t, token)
	ctl := func(args ...string) (int, string, string) {
		return berryctl(append([]string{"--server", addr, "--token", token}, args...)...)
	}
	seed := filepath.Join(t.TempDir(), "seed.toml")
	if err := os.WriteFile(seed, []byte(`
[settings]
usage_retention_days = 30

[providers.openai]
name = "OpenAI"
base_url = "https://api.openai.com/v1"
models = ["gpt-4o"]

[models.demo]
[[models.demo.backends]]
provider = "openai"
model = "gpt-4o"
price = { input_per_mtok = 2.5, output_per_mtok = 10.0 }

[users.plain]
token = "plain-token"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := ctl("import", seed); code != 0 {
		t.Fatalf("import: %s", errOut)
	}

	code, _, errOut := ctl("keys", "create", "--id", "full", "--rpm", "60", "--rph", "1000", "--rpd", "10000",
		"--tpm", "100000", "--tpd", "2000000", "--usd-per-day", "5", "--usd-per-month", "100.5")
	if code != 0 {
		t.Fatalf("keys create with every limit: exit %d %s", code, errOut)
	}
	if code, _, errOut := ctl("keys", "create", "--id", "tokens-only", "--tpd", "500", "--usd-per-month=0.25"); code != 0 {
		t.Fatalf("keys create with token and budget limits only: exit %d %s", code, errOut)
	}

	code, out, errOut := ctl("get", "users", "full", "-o", "json")
	var r struct {
		User struct {
			RateLimit map[string]any
			Budget    map[string]float64
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("get users full -o json: exit %d %s%s", code, out, errOut)
	}
	// protojson writes uint64 as strings and uint32 as numbers.
	rl, b := r.User.RateLimit, r.User.Budget
	if rl["requestsPerMinute"] != 60.0 || rl["requestsPerHour"] != 1000.0 || rl["requestsPerDay"] != 10000.0 ||
		rl["tokensPerMinute"] != "100000" || rl["tokensPerDay"] != "2000000" || b["usdPerDay"] != 5 || b["usdPerMonth"] != 100.5 {
		t.Fatalf("stored rate limit %v, budget %v", rl, b)
	}

	code, out, errOut = ctl("get", "users")
	if code != 0 {
		t.Fatalf("get users: exit %d %s", code, errOut)
	}
	// Columns by the header's offsets: tabwriter aligns them, and TAGS may be empty.
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	li, bi := strings.Index(lines[0], "LIMITS"), strings.Index(lines[0], "BUDGET")
	if li < 0 || bi < li || strings.TrimSpace(lines[0][bi:]) != "BUDGET" {
		t.Fatalf("get users header:\n%s", out)
	}
	got := map[string][2]string{}
	for _, l := range lines[1:] {
		got[strings.Fields(l)[0]] = [2]string{strings.TrimSpace(l[li:bi]), strings.TrimSpace(l[bi:])}
	}
	for id, want := range map[string][2]string{
		"full":        {"60rpm 1000rph 10000rpd 100000tpm 2000000tpd", "$5/d $100.5/mo"},
		"tokens-only": {"500tpd", "$0.25/mo"},
		"plain":       {"-", "-"},
	} {
		if got[id] != want {
			t.Errorf("get users %s: LIMITS, BUDGET = %q, want %q\n%s", id, got[id], want, out)
		}
	}

	// -o toml is the seed form, budget and token limits included.
	if code, out, _ := ctl("get", "users", "full", "-o", "toml"); code != 0 ||
		!strings.Contains(out, "tokens_per_minute = 100000, tokens_per_day = 2000000 }\nbudget = { usd_per_day = 5.0, usd_per_month = 100.5 }\n") {
		t.Errorf("get users full -o toml: exit %d\n%s", code, out)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"negative budget", []string{"--id", "k1", "--usd-per-day", "-1"},
			"berryctl: rejected: invalid config: users.k1.budget.usd_per_day: must be a finite number ≥ 0, got -1\n"},
		{"NaN budget", []string{"--id", "k2", "--usd-per-month", "NaN"},
			"berryctl: rejected: invalid config: users.k2.budget.usd_per_month: must be a finite number ≥ 0, got NaN\n"},
		{"infinite budget", []string{"--id", "k3", "--usd-per-month", "+Inf"},
			"berryctl: rejected: invalid config: users.k3.budget.usd_per_month: must be a finite number ≥ 0, got +Inf\n"},
		{"requests beyond 32 bits", []string{"--id", "k4", "--rph", "4294967296"},
			"berryctl: --rph 4294967296: must be at most 4294967295\n"},
		{"token limit beyond what the seed format holds", []string{"--id", "k7", "--tpd", "18446744073709551615"},
			"berryctl: rejected: invalid config: users.k7.rate_limit.tokens_per_day: must be at most 9223372036854775807, got 18446744073709551615\n"},
		{"negative token limit", []string{"--id", "k5", "--tpm", "-1"},
			`berryctl: invalid value "-1" for flag -tpm: parse error (see berryctl --help)` + "\n"},
		{"budget not a number", []string{"--id", "k6", "--usd-per-day", "five"},
			`berryctl: invalid value "five" for flag -usd-per-day: parse error (see berryctl --help)` + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := ctl(append([]string{"keys", "create"}, tt.args...)...)
			if code != 1 || out != "" || errOut != tt.want {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, out, errOut, tt.want)
			}
		})
	}
	if code, out, _ := ctl("get", "users", "-o", "json"); code != 0 || strings.Contains(out, `"k1"`) || strings.Contains(out, `"k4"`) {
		t.Fatalf("a refused key was stored: %s", out)
	}

	code, out, errOut = ctl("get", "settings")
	settings := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			settings[f[0]] = strings.Join(f[1:], " ")
		}
	}
	if code != 0 || settings["quota_when_disconnected"] != "share (default)" || settings["usage_retention_days"] != "30" {
		t.Fatalf("get settings: exit %d\n%s%s", code, out, errOut)
	}
}

func TestHelpListsKeyLimitFlags(t *testing.T) {
	clearEnv(t)
	_, out, _ := berryctl("--help")
	for _, f := range []string{"--rpm N", "--rph N", "--rpd N", "--tpm N", "--tpd N", "--usd-per-day X", "--usd-per-month X"} {
		if !strings.Contains(out, f) {
			t.Errorf("usage lacks %q", f)
		}
	}
}
