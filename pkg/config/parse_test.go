package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/balancer"
	"github.com/berry-gateway/berry/pkg/provider"
)

func TestParseSeed(t *testing.T) {
	cfg, warnings, err := ParseTOML([]byte(seedTOML))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings = %q, want none", warnings)
	}
	wantProto(t, cfg, seedConfig())
	for _, u := range cfg.GetUsers() {
		if u.GetToken() != "" {
			t.Errorf("users.%s: clear token kept after parsing", u.GetId())
		}
	}
}

func TestParseDefaults(t *testing.T) {
	tests := []struct {
		name  string
		doc   doc
		check func(cfg *berryv1.Config) (got, want any)
	}{
		{"settings all defaulted", doc{}, func(c *berryv1.Config) (any, any) {
			s := c.GetSettings()
			return []any{s.GetHealthCheckIntervalSeconds(), s.GetRequestTimeoutSeconds(), s.GetMaxRetries(),
					s.GetCircuitBreakerFailureThreshold(), s.GetCircuitBreakerTimeoutSeconds(),
					s.GetRecoveryCheckIntervalSeconds(), s.GetMaxRequestBodyBytes()},
				[]any{uint32(30), uint32(30), uint32(3), uint32(5), uint32(60), uint32(120), uint64(0)}
		}},
		{"settings zero max_retries kept", doc{settings: "max_retries = 0"}, func(c *berryv1.Config) (any, any) {
			return c.GetSettings().GetMaxRetries(), uint32(0)
		}},
		{"provider enabled", doc{}, func(c *berryv1.Config) (any, any) {
			return c.GetProviders()[0].GetEnabled(), true
		}},
		{"provider disabled kept", doc{provider: "enabled = false"}, func(c *berryv1.Config) (any, any) {
			return c.GetProviders()[0].GetEnabled(), false
		}},
		{"provider timeout and retries from settings", doc{settings: "request_timeout_seconds = 45\nmax_retries = 7"},
			func(c *berryv1.Config) (any, any) {
				p := c.GetProviders()[0]
				return []uint32{p.GetTimeoutSeconds(), p.GetMaxRetries()}, []uint32{45, 7}
			}},
		{"provider timeout and retries explicit", doc{provider: "timeout_seconds = 5\nmax_retries = 0"},
			func(c *berryv1.Config) (any, any) {
				p := c.GetProviders()[0]
				return []uint32{p.GetTimeoutSeconds(), p.GetMaxRetries()}, []uint32{5, 0}
			}},
		{"backend_type openai", doc{}, func(c *berryv1.Config) (any, any) {
			p := c.GetProviders()[0]
			return []string{p.GetBackendType(), p.GetApiVersion()}, []string{"openai", ""}
		}},
		{"backend_type anthropic kept", doc{provider: `backend_type = "anthropic"`}, func(c *berryv1.Config) (any, any) {
			return c.GetProviders()[0].GetBackendType(), "anthropic"
		}},
		{"backend_type claude kept", doc{provider: `backend_type = "claude"`}, func(c *berryv1.Config) (any, any) {
			return c.GetProviders()[0].GetBackendType(), "claude"
		}},
		{"azure api_version default", doc{provider: `backend_type = "azure"`}, func(c *berryv1.Config) (any, any) {
			return c.GetProviders()[0].GetApiVersion(), "2024-10-21"
		}},
		{"azure api_version explicit", doc{provider: "backend_type = \"azure\"\napi_version = \"2025-01-01\""},
			func(c *berryv1.Config) (any, any) { return c.GetProviders()[0].GetApiVersion(), "2025-01-01" }},
		{"gemini no api_version", doc{provider: `backend_type = "gemini"`}, func(c *berryv1.Config) (any, any) {
			return c.GetProviders()[0].GetApiVersion(), ""
		}},
		{"api_key may be empty", doc{}, func(c *berryv1.Config) (any, any) {
			return c.GetProviders()[0].GetApiKey(), ""
		}},
		{"model name from id", doc{}, func(c *berryv1.Config) (any, any) {
			return c.GetModels()[0].GetName(), "m"
		}},
		{"model strategy and enabled", doc{}, func(c *berryv1.Config) (any, any) {
			m := c.GetModels()[0]
			return []any{m.GetStrategy(), m.GetEnabled()}, []any{"weighted_random", true}
		}},
		{"model routing fields absent", doc{}, func(c *berryv1.Config) (any, any) {
			m := c.GetModels()[0]
			return []any{m.GetAliases(), m.GetWildcard(), m.GetFallbacks(), m.GetAffinity(), c.GetProviders()[0].GetResponsesApi()},
				[]any{[]string(nil), "", map[string]string(nil), "", ""}
		}},
		{"model routing fields", doc{
			model: `aliases = ["gpt4", "gpt-4-0613"]
wildcard = "p/gpt-*"
fallbacks = { context_window = "big", any = "big" }
affinity = "header:X-Session-Id"`,
			extra: "[models.big]\n[[models.big.backends]]\nprovider = \"p\"\nmodel = \"up\"",
		}, func(c *berryv1.Config) (any, any) {
			m := c.GetModels()[1]
			return []any{m.GetAliases(), m.GetWildcard(), m.GetFallbacks(), m.GetAffinity()},
				[]any{[]string{"gpt4", "gpt-4-0613"}, "p/gpt-*", map[string]string{"any": "big", "context_window": "big"}, "header:x-session-id"}
		}},
		{"fallbacks as a table", doc{
			extra: "[models.m.fallbacks]\ncontent_filter = \"safe\"\n[models.safe]\nwildcard = \"p/*\"",
		}, func(c *berryv1.Config) (any, any) {
			return c.GetModels()[0].GetFallbacks(), map[string]string{"content_filter": "safe"}
		}},
		{"wildcard model without backends", doc{extra: "[models.any]\nwildcard = \"p/*\"\naffinity = \"user\""},
			func(c *berryv1.Config) (any, any) {
				m := c.GetModels()[0]
				return []any{m.GetId(), m.GetName(), len(m.GetBackends()), m.GetAffinity()}, []any{"any", "any", 0, "user"}
			}},
		{"responses_api kept", doc{provider: `responses_api = "chat"`}, func(c *berryv1.Config) (any, any) {
			return c.GetProviders()[0].GetResponsesApi(), "chat"
		}},
		{"stream_usage kept", doc{provider: `stream_usage = "off"`}, func(c *berryv1.Config) (any, any) {
			return c.GetProviders()[0].GetStreamUsage(), "off"
		}},
		{"backend defaults", doc{}, func(c *berryv1.Config) (any, any) {
			b := c.GetModels()[0].GetBackends()[0]
			return []any{b.GetWeight(), b.GetEnabled(), b.GetBillingMode(), b.GetPriority()},
				[]any{1.0, true, "per_token", int32(0)}
		}},
		{"backend integer weight", doc{backend: "weight = 3"}, func(c *berryv1.Config) (any, any) {
			return c.GetModels()[0].GetBackends()[0].GetWeight(), 3.0
		}},
		{"backend negative priority", doc{backend: "priority = -2"}, func(c *berryv1.Config) (any, any) {
			return c.GetModels()[0].GetBackends()[0].GetPriority(), int32(-2)
		}},
		{"user defaults and hashed token", doc{}, func(c *berryv1.Config) (any, any) {
			u := c.GetUsers()[0]
			return []any{u.GetEnabled(), u.GetToken(), hex.EncodeToString(u.GetTokenSha256()), u.GetRateLimit() == nil},
				[]any{true, "", hex.EncodeToString(HashToken("tok")), true}
		}},
		{"user token_sha256 accepted", doc{extra: "[users.v]\ntoken_sha256 = \"" + strings.ToUpper(hex.EncodeToString(HashToken("v"))) + "\""},
			func(c *berryv1.Config) (any, any) {
				return hex.EncodeToString(c.GetUsers()[1].GetTokenSha256()), hex.EncodeToString(HashToken("v"))
			}},
		{"usage keys absent", doc{user: "rate_limit = { requests_per_minute = 1 }"}, func(c *berryv1.Config) (any, any) {
			s, rl := c.GetSettings(), c.GetUsers()[0].GetRateLimit()
			return []any{s.GetQuotaWhenDisconnected(), s.GetUsageRetentionDays(), c.GetModels()[0].GetBackends()[0].GetPrice() == nil,
					c.GetUsers()[0].GetBudget() == nil, rl.GetTokensPerMinute(), rl.GetTokensPerDay()},
				[]any{"", uint32(0), true, true, uint64(0), uint64(0)}
		}},
		{"usage settings", doc{settings: "quota_when_disconnected = \"closed\"\nusage_retention_days = 30"}, func(c *berryv1.Config) (any, any) {
			s := c.GetSettings()
			return []any{s.GetQuotaWhenDisconnected(), s.GetUsageRetentionDays()}, []any{"closed", uint32(30)}
		}},
		{"rate limit inline with token limits", doc{user: "rate_limit = { requests_per_minute = 60, tokens_per_minute = 100000, tokens_per_day = 9223372036854775807 }"},
			func(c *berryv1.Config) (any, any) {
				rl := c.GetUsers()[0].GetRateLimit()
				return []any{rl.GetRequestsPerMinute(), rl.GetRequestsPerHour(), rl.GetTokensPerMinute(), rl.GetTokensPerDay()},
					[]any{uint32(60), uint32(0), uint64(100000), uint64(9223372036854775807)}
			}},
		{"rate limit and budget as tables", doc{extra: "[users.u.rate_limit]\nrequests_per_day = 7\ntokens_per_day = 2000000\n" +
			"[users.u.budget]\nusd_per_month = 100"}, func(c *berryv1.Config) (any, any) {
			u := c.GetUsers()[0]
			return []any{u.GetRateLimit().GetRequestsPerDay(), u.GetRateLimit().GetTokensPerDay(), u.GetBudget().GetUsdPerDay(), u.GetBudget().GetUsdPerMonth()},
				[]any{uint32(7), uint64(2000000), 0.0, 100.0}
		}},
		{"budget inline, integers read as floats", doc{user: "budget = { usd_per_day = 5, usd_per_month = 99.5 }"}, func(c *berryv1.Config) (any, any) {
			b := c.GetUsers()[0].GetBudget()
			return []any{b.GetUsdPerDay(), b.GetUsdPerMonth()}, []any{5.0, 99.5}
		}},
		{"price inline", doc{backend: "price = { input_per_mtok = 30.0, output_per_mtok = 60, cached_input_per_mtok = 15.0 }"},
			func(c *berryv1.Config) (any, any) {
				p := c.GetModels()[0].GetBackends()[0].GetPrice()
				return []any{p.GetInputPerMtok(), p.GetOutputPerMtok(), p.GetCachedInputPerMtok()}, []any{30.0, 60.0, 15.0}
			}},
		{"price as a table, of the backend above it", doc{backend: "[models.m.backends.price]\ninput_per_mtok = 0.15\noutput_per_mtok = 0.6",
			extra: "[[models.m.backends]]\nprovider = \"p\"\nmodel = \"up\""},
			func(c *berryv1.Config) (any, any) {
				bs := c.GetModels()[0].GetBackends()
				return []any{bs[0].GetPrice().GetInputPerMtok(), bs[0].GetPrice().GetOutputPerMtok(), bs[1].GetPrice() == nil},
					[]any{0.15, 0.6, true}
			}},
		{"zero price kept: free, not unpriced", doc{backend: "price = { input_per_mtok = 0 }"}, func(c *berryv1.Config) (any, any) {
			p := c.GetModels()[0].GetBackends()[0].GetPrice()
			return []any{p != nil, p.GetInputPerMtok()}, []any{true, 0.0}
		}},
		{"sorted by id, backends in file order", doc{
			extra: `
[providers.a]
name = "A"
base_url = "http://a"
models = ["x"]
[models.a]
[[models.a.backends]]
provider = "p"
model = "up"
[[models.a.backends]]
provider = "a"
model = "x"
[users.a]
token = "a"
`}, func(c *berryv1.Config) (any, any) {
			var got []string
			for _, p := range c.GetProviders() {
				got = append(got, p.GetId())
			}
			for _, m := range c.GetModels() {
				got = append(got, m.GetId())
			}
			for _, u := range c.GetUsers() {
				got = append(got, u.GetId())
			}
			for _, b := range c.GetModels()[0].GetBackends() {
				got = append(got, b.GetProvider())
			}
			return strings.Join(got, ","), "a,p,a,m,a,u,p,a"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, warnings, err := ParseTOML([]byte(tt.doc.String()))
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) > 0 {
				t.Errorf("warnings = %q", warnings)
			}
			got, want := tt.check(cfg)
			// %#v keeps types apart, so a uint32 30 does not pass for an int 30.
			if gs, ws := fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want); gs != ws {
				t.Errorf("got %s, want %s", gs, ws)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"negative settings uint", doc{settings: "max_retries = -1"}.String(),
			[]string{"settings.max_retries: must not be negative, got -1"}},
		{"negative timeout not also reported as zero", doc{settings: "request_timeout_seconds = -5"}.String(),
			[]string{"settings.request_timeout_seconds: must not be negative, got -5"}},
		{"uint32 overflow", doc{provider: "timeout_seconds = 4294967296"}.String(),
			[]string{"providers.p.timeout_seconds: must be at most 4294967295, got 4294967296"}},
		{"negative max_request_body_bytes", doc{settings: "max_request_body_bytes = -1"}.String(),
			[]string{"settings.max_request_body_bytes: must not be negative, got -1"}},
		{"negative provider max_retries", doc{provider: "max_retries = -3"}.String(),
			[]string{"providers.p.max_retries: must not be negative, got -3"}},
		{"priority overflow", doc{backend: "priority = 2147483648"}.String(),
			[]string{"models.m.backends[0].priority: must be between -2147483648 and 2147483647, got 2147483648"}},
		{"negative rate limit", doc{user: "rate_limit = { requests_per_hour = -1 }"}.String(),
			[]string{"users.u.rate_limit.requests_per_hour: must not be negative, got -1"}},
		{"every rate limit negative", doc{user: "rate_limit = { requests_per_minute = -1, requests_per_hour = -2, requests_per_day = -3, tokens_per_minute = -4, tokens_per_day = -5 }"}.String(),
			[]string{
				"users.u.rate_limit.requests_per_minute: must not be negative, got -1",
				"users.u.rate_limit.requests_per_hour: must not be negative, got -2",
				"users.u.rate_limit.requests_per_day: must not be negative, got -3",
				"users.u.rate_limit.tokens_per_minute: must not be negative, got -4",
				"users.u.rate_limit.tokens_per_day: must not be negative, got -5",
			}},
		{"negative token limit in a rate_limit table", doc{extra: "[users.u.rate_limit]\ntokens_per_day = -1"}.String(),
			[]string{"users.u.rate_limit.tokens_per_day: must not be negative, got -1"}},
		{"request limit overflow", doc{user: "rate_limit = { requests_per_minute = 4294967296 }"}.String(),
			[]string{"users.u.rate_limit.requests_per_minute: must be at most 4294967295, got 4294967296"}},
		{"negative usage retention", doc{settings: "usage_retention_days = -1"}.String(),
			[]string{"settings.usage_retention_days: must not be negative, got -1"}},
		{"usage retention overflow", doc{settings: "usage_retention_days = 4294967296"}.String(),
			[]string{"settings.usage_retention_days: must be at most 4294967295, got 4294967296"}},
		{"unknown quota mode", doc{settings: `quota_when_disconnected = "deny"`}.String(),
			[]string{`settings.quota_when_disconnected: unknown mode "deny" (known: share, open, closed)`}},
		{"bad prices", doc{backend: "price = { input_per_mtok = -30.0, output_per_mtok = nan, cached_input_per_mtok = inf }"}.String(),
			[]string{
				"models.m.backends[0].price.input_per_mtok: must be a finite number ≥ 0, got -30",
				"models.m.backends[0].price.output_per_mtok: must be a finite number ≥ 0, got NaN",
				"models.m.backends[0].price.cached_input_per_mtok: must be a finite number ≥ 0, got +Inf",
			}},
		{"bad price in a table, second backend", doc{extra: "[[models.m.backends]]\nprovider = \"p\"\nmodel = \"up\"\n[models.m.backends.price]\noutput_per_mtok = -inf"}.String(),
			[]string{"models.m.backends[1].price.output_per_mtok: must be a finite number ≥ 0, got -Inf"}},
		{"bad budget", doc{user: "budget = { usd_per_day = -5, usd_per_month = nan }"}.String(),
			[]string{
				"users.u.budget.usd_per_day: must be a finite number ≥ 0, got -5",
				"users.u.budget.usd_per_month: must be a finite number ≥ 0, got NaN",
			}},
		{"settings zero", doc{settings: "request_timeout_seconds = 0\ncircuit_breaker_failure_threshold = 0\nhealth_check_interval_seconds = 0\nrecovery_check_interval_seconds = 0"}.String(),
			[]string{
				"settings.health_check_interval_seconds: must be > 0",
				"settings.request_timeout_seconds: must be > 0",
				"settings.circuit_breaker_failure_threshold: must be > 0",
				"settings.recovery_check_interval_seconds: must be > 0",
			}},
		{"explicit empty model name", doc{model: `name = ""`}.String(), []string{"models.m.name: required"}},
		{"weight negative", doc{backend: "weight = -1"}.String(), []string{"models.m.backends[0].weight: must be > 0, got -1"}},
		{"weight zero", doc{backend: "weight = 0.0"}.String(), []string{"models.m.backends[0].weight: must be > 0, got 0"}},
		{"weight nan", doc{backend: "weight = nan"}.String(), []string{"models.m.backends[0].weight: must be finite, got NaN"}},
		{"weight inf", doc{backend: "weight = inf"}.String(), []string{"models.m.backends[0].weight: must be finite, got +Inf"}},
		{"unknown provider", doc{extra: "[[models.m.backends]]\nprovider = \"nope\"\nmodel = \"up\""}.String(),
			[]string{`models.m.backends[1].provider: unknown provider "nope"`}},
		{"backend without provider and model", doc{extra: "[[models.m.backends]]\nweight = 1"}.String(),
			[]string{"models.m.backends[1].provider: required", "models.m.backends[1].model: required"}},
		{"model not offered by provider", doc{extra: "[[models.m.backends]]\nprovider = \"p\"\nmodel = \"gpt-5\""}.String(),
			[]string{`models.m.backends[1].model: "gpt-5" is not in providers.p.models`}},
		{"relative base_url", strings.Replace(doc{}.String(), `base_url = "https://p.example/v1"`, `base_url = "api.openai.com/v1"`, 1),
			[]string{"providers.p.base_url: must be an absolute http(s) URL"}},
		{"ftp base_url", strings.Replace(doc{}.String(), `https://p.example/v1`, `ftp://p.example`, 1),
			[]string{"providers.p.base_url: must be an absolute http(s) URL"}},
		{"provider without name", strings.Replace(doc{}.String(), `name = "P"`, ``, 1),
			[]string{"providers.p.name: required"}},
		{"provider without models", strings.Replace(doc{}.String(), `models = ["up"]`, `models = []`, 1),
			[]string{"providers.p.models: must list at least one model", `models.m.backends[0].model: "up" is not in providers.p.models`}},
		{"provider duplicate and empty models", strings.Replace(doc{}.String(), `models = ["up"]`, `models = ["up", "", "up"]`, 1),
			[]string{"providers.p.models[1]: must not be empty", `providers.p.models[2]: duplicate model "up"`}},
		{"unknown backend_type", doc{provider: `backend_type = "cohere"`}.String(),
			[]string{`providers.p.backend_type: unknown backend type "cohere" (known: ` + strings.Join(provider.Kinds(), ", ") + `)`}},
		{"bad header name", doc{provider: `headers = { "X Bad" = "v", "Good" = "ok" }`}.String(),
			[]string{`providers.p.headers."X Bad": invalid HTTP header name`}},
		{"header value with CRLF", doc{provider: `headers = { "X-A" = "v\r\nX-Injected: 1" }`}.String(),
			[]string{`providers.p.headers.X-A: header value must not contain CR, LF or NUL`}},
		{"unknown billing mode", doc{backend: `billing_mode = "per_minute"`}.String(),
			[]string{`models.m.backends[0].billing_mode: unknown billing mode "per_minute" (known: per_token, per_request)`}},
		{"model without backends", doc{extra: "[models.empty]"}.String(),
			[]string{"models.empty.backends: must have at least one backend"}},
		{"duplicate model name", doc{extra: "[models.m2]\nname = \"m\"\n[[models.m2.backends]]\nprovider = \"p\"\nmodel = \"up\""}.String(),
			[]string{`models.m2.name: "m" is already used by models.m; clients select models by name`}},
		{"user without token", strings.Replace(doc{}.String(), `token = "tok"`, ``, 1),
			[]string{"users.u.token: required"}},
		{"user with empty token", strings.Replace(doc{}.String(), `token = "tok"`, `token = ""`, 1),
			[]string{"users.u.token: required"}},
		{"duplicate tokens", doc{extra: "[users.v]\ntoken = \"tok\""}.String(),
			[]string{"users.v.token: same token as users.u"}},
		{"token and token_sha256", doc{user: `token_sha256 = "` + hex.EncodeToString(HashToken("tok")) + `"`}.String(),
			[]string{"users.u.token_sha256: set either token or token_sha256, not both"}},
		{"bad token_sha256", doc{extra: "[users.v]\ntoken_sha256 = \"abc\""}.String(),
			[]string{"users.v.token_sha256: must be 64 hex digits", "users.v.token: required"}},
		{"unknown allowed model", doc{user: `allowed_models = ["zzz"]`}.String(),
			[]string{`users.u.allowed_models: unknown model id "zzz"`}},
		{"allowed model given by name", doc{model: `name = "Model M"`, user: `allowed_models = ["Model M"]`}.String(),
			[]string{`users.u.allowed_models: unknown model id "Model M" (models.m has that name; allowed_models lists ids)`}},
		{"unknown strategy", doc{model: `strategy = "fastest"`}.String(),
			[]string{`models.m.strategy: unknown strategy "fastest" (known: ` + strings.Join(balancer.Names(), ", ") + `)`}},
		{"invalid id", doc{extra: "[users.\"a b\"]\ntoken = \"x\""}.String(),
			[]string{`users."a b".id: must match [A-Za-z0-9_.-]+`}},
		{"empty id", doc{extra: "[users.\"\"]\ntoken = \"x\""}.String(),
			[]string{`users[0].id: required`}},
		{"alias clashes", doc{
			model: `aliases = ["gpt4", "p/up"]`,
			extra: "[models.gpt_4]\nname = \"gpt4\"\nwildcard = \"p/*\"\naliases = [\"m\", \"x y\"]",
		}.String(), []string{
			`models.gpt_4.aliases[0]: "m" is already the name of models.m`,
			`models.gpt_4.aliases[1]: "x y" must not contain whitespace or control characters`,
			`models.m.aliases[0]: "gpt4" is already the name of models.gpt_4`,
			`models.m.aliases[1]: "p/up" must not start with "p/": names of that form address provider "p" directly`,
		}},
		{"bad wildcard", doc{model: `wildcard = "p/*/x"`}.String(),
			[]string{`models.m.wildcard: "p/*/x" must have exactly one "*", at the end`}},
		{"wildcard of unknown provider, no backends", doc{extra: "[models.w]\nwildcard = \"q/*\""}.String(),
			[]string{`models.w.wildcard: unknown provider "q"`}},
		{"overlapping wildcards", doc{model: `wildcard = "p/gpt*"`, extra: "[models.w]\nwildcard = \"p/gpt-4o*\""}.String(),
			[]string{`models.w.wildcard: "p/gpt-4o*" overlaps models.m.wildcard "p/gpt*": a name could match both`}},
		{"fallbacks not a table", doc{model: `fallbacks = "m2"`}.String(),
			[]string{"models.m.fallbacks: must be a table, got string"}},
		{"fallback problems", doc{model: `fallbacks = { timeout = "m", any = "m", context_window = "M" }`}.String(),
			[]string{
				"models.m.fallbacks.any: must not be the model itself",
				`models.m.fallbacks.context_window: unknown model id "M"`,
				`models.m.fallbacks.timeout: unknown error class "timeout" (known: context_window, content_filter, any)`,
				"models.m.fallbacks.timeout: must not be the model itself",
			}},
		{"fallback cycle", doc{
			model: `fallbacks = { any = "b" }`,
			extra: "[models.b]\nwildcard = \"p/*\"\nfallbacks = { context_window = \"m\" }",
		}.String(), []string{"models.b.fallbacks.context_window: fallback cycle b → m → b"}},
		{"bad affinity", doc{model: `affinity = "header:X Session"`}.String(),
			[]string{`models.m.affinity: invalid HTTP header name "x session"`}},
		{"bad responses_api", doc{provider: "backend_type = \"anthropic\"\nresponses_api = \"native\""}.String(),
			[]string{`providers.p.responses_api: "native" is not possible with backend_type "anthropic": Anthropic does not serve the Responses API; use "chat" or leave it unset`}},
		{"every problem reported", strings.Replace(doc{
			settings: "max_retries = -1",
			backend:  "weight = -1\nbilling_mode = \"free\"",
			user:     `allowed_models = ["zzz"]`,
		}.String(), `https://p.example/v1`, `nope`, 1),
			[]string{
				"settings.max_retries: must not be negative, got -1",
				"providers.p.base_url: must be an absolute http(s) URL",
				"models.m.backends[0].weight: must be > 0, got -1",
				`models.m.backends[0].billing_mode: unknown billing mode "free" (known: per_token, per_request)`,
				`users.u.allowed_models: unknown model id "zzz"`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := ParseTOML([]byte(tt.doc))
			if cfg != nil {
				t.Errorf("config returned along with error")
			}
			wantLines(t, errLines(t, err), tt.want)
			for _, line := range tt.want {
				if !strings.Contains(err.Error(), "\n"+line) {
					t.Errorf("Error() = %q lacks line %q", err.Error(), line)
				}
			}
		})
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		wantLine string
	}{
		{"bad key", "[settings]\nmax_retries = 1\nbad key = 2\n", "line 3"},
		{"unterminated string", "[settings]\n\n\nx = \"abc\n", "line 4"},
		{"missing value", "[settings]\n\nmax_retries =\n", "line 3"},
		{"duplicate key", "[settings]\nmax_retries = 1\nmax_retries = 2\n", "line 3"},
		{"wrong type", "[settings]\nmax_retries = \"three\"\n", "line 2"},
		{"wrong struct type", "[providers]\np = 1\n", "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseTOML([]byte(tt.doc))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.wantLine) {
				t.Errorf("err = %q, want it to mention %q", err, tt.wantLine)
			}
		})
	}
}

func TestParseStructureErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"providers scalar", "providers = 1\n", []string{"providers: must be a table, got integer"}},
		{"models array", "models = []\n", []string{"models: must be a table, got array"}},
		{"users string", "users = \"x\"\n", []string{"users: must be a table, got string"}},
		{"field in upper case", doc{provider: "Name = \"other\""}.String(), []string{"providers.p.Name: key names are case-sensitive and lower case"}},
		{"table in mixed case", "[Settings]\nmax_retries = 1\n", []string{"Settings: key names are case-sensitive and lower case"}},
		{"unicode case folding", "[\"ſettings\"]\nmax_retries = 1\n", []string{`"ſettings": key names are case-sensitive and lower case`}},
		{"backend field", doc{backend: "Weight = 2"}.String(), []string{"models.m.backends.Weight: key names are case-sensitive and lower case"}},
		{"headers array", doc{provider: "headers = [\"X-A: b\"]"}.String(), []string{"providers.p.headers: must be a table, got array"}},
		{"new model key in upper case", doc{model: "Aliases = [\"x\"]"}.String(), []string{"models.m.Aliases: key names are case-sensitive and lower case"}},
		{"price field in upper case", doc{backend: "price = { Input_per_mtok = 1.0 }"}.String(),
			[]string{"models.m.backends.price.Input_per_mtok: key names are case-sensitive and lower case"}},
		{"budget field in upper case", doc{extra: "[users.u.budget]\nUSD_per_day = 1.0"}.String(),
			[]string{"users.u.budget.USD_per_day: key names are case-sensitive and lower case"}},
		{"token limit in upper case", doc{user: "rate_limit = { Tokens_per_day = 1 }"}.String(),
			[]string{"users.u.rate_limit.Tokens_per_day: key names are case-sensitive and lower case"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseTOML([]byte(tt.doc))
			wantLines(t, errLines(t, err), tt.want)
		})
	}
}

func TestParseUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		doc  doc
		want []string
	}{
		{"none", doc{}, nil},
		{"provider key", doc{provider: "foo = 1"}, []string{`unknown key "providers.p.foo" ignored`}},
		{"backend key", doc{backend: "region = \"eu\""}, []string{`unknown key "models.m.backends.region" ignored`}},
		{"rate limit key", doc{user: "rate_limit = { per_second = 1 }"}, []string{`unknown key "users.u.rate_limit.per_second" ignored`}},
		{"price key", doc{backend: "price = { input_per_mtok = 1.0, currency = \"EUR\" }"}, []string{`unknown key "models.m.backends.price.currency" ignored`}},
		{"budget key", doc{user: "budget = { usd_per_week = 1.0 }"}, []string{`unknown key "users.u.budget.usd_per_week" ignored`}},
		{"unknown table reported once", doc{extra: "[metrics]\nport = 9090\n[metrics.labels]\nenv = \"prod\""},
			[]string{`unknown key "metrics" ignored`}},
		{"several, in file order", doc{settings: "log_level = \"debug\"", model: "owner = \"x\""},
			[]string{`unknown key "settings.log_level" ignored`, `unknown key "models.m.owner" ignored`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warnings, err := ParseTOML([]byte(tt.doc.String()))
			if err != nil {
				t.Fatal(err)
			}
			wantLines(t, warnings, tt.want)
		})
	}
}

// A price, budget or limit of the wrong type is refused by the decoder, with the line
// and the key it is under.
func TestParseWrongTypedUsageKeys(t *testing.T) {
	tests := []struct {
		name string
		doc  doc
		want string
	}{
		{"price as a string", doc{backend: `price = { input_per_mtok = "30" }`}, `line 13 (last key "models.m.backends.price.input_per_mtok")`},
		{"price as a bool", doc{backend: `price = { output_per_mtok = true }`}, `(last key "models.m.backends.price.output_per_mtok")`},
		{"price not a table", doc{backend: `price = 30.0`}, `(last key "models.m.backends.price")`},
		{"budget as a string", doc{user: `budget = { usd_per_day = "5" }`}, `(last key "users.u.budget.usd_per_day")`},
		{"budget not a table", doc{user: `budget = 5.0`}, `(last key "users.u.budget")`},
		{"token limit as a float", doc{user: `rate_limit = { tokens_per_minute = 1.5e5 }`}, `(last key "users.u.rate_limit.tokens_per_minute")`},
		{"token limit as a string", doc{user: `rate_limit = { tokens_per_day = "2000000" }`}, `(last key "users.u.rate_limit.tokens_per_day")`},
		{"token limit beyond 64 bits", doc{user: `rate_limit = { tokens_per_day = 18446744073709551615 }`}, `(last key "users.u.rate_limit.tokens_per_day")`},
		{"quota mode not a string", doc{settings: `quota_when_disconnected = false`}, `(last key "settings.quota_when_disconnected")`},
		{"retention as a string", doc{settings: `usage_retention_days = "90"`}, `(last key "settings.usage_retention_days")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := ParseTOML([]byte(tt.doc.String()))
			if cfg != nil || !errors.Is(err, ErrInvalid) {
				t.Fatalf("cfg %v, err %v; want ErrInvalid", cfg, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %q does not contain %q", err, tt.want)
			}
		})
	}
}
