package config

import (
	"errors"
	"math"
	"strings"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/balancer"
)

// A strategy registered only by this test, so that "known strategies other than the
// default are accepted" does not depend on which strategy files exist yet.
const testStrategy = "config_test_strategy"

func init() {
	balancer.Register(testStrategy, func() balancer.Strategy { return nil })
}

func TestValidateValid(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *berryv1.Config)
	}{
		{"as built", func(*berryv1.Config) {}},
		{"seed", func(c *berryv1.Config) { *c = *seedConfig() }},
		{"empty enums mean the default", func(c *berryv1.Config) {
			c.Providers[0].BackendType = ""
			c.Models[0].Strategy = ""
			c.Models[0].Backends[0].BillingMode = ""
		}},
		{"registered strategy", func(c *berryv1.Config) { c.Models[0].Strategy = testStrategy }},
		{"every backend type", func(c *berryv1.Config) {
			for _, bt := range []string{"openai", "claude", "anthropic", "gemini"} {
				p := &berryv1.Provider{Id: "p-" + bt, Name: bt, BaseUrl: "https://x", Models: []string{"m"}, BackendType: bt}
				c.Providers = append(c.Providers, p)
			}
			c.Providers = append(c.Providers, &berryv1.Provider{Id: "az", Name: "az", BaseUrl: "https://x",
				Models: []string{"d"}, BackendType: "azure", ApiVersion: "2024-10-21"})
		}},
		{"no api key, zero provider timeout, zero retries", func(c *berryv1.Config) {
			c.Providers[0].ApiKey = ""
			c.Providers[0].TimeoutSeconds = 0
			c.Settings.MaxRetries = 0
		}},
		{"clear token matching its hash", func(c *berryv1.Config) { c.Users[0].Token = "t1" }},
		{"valid headers", func(c *berryv1.Config) {
			c.Providers[0].Headers = map[string]string{"X-Extra": "v\twith tab", "OpenAI-Organization": "org-1"}
		}},
		{"disabled things still validated but allowed", func(c *berryv1.Config) {
			c.Providers[0].Enabled = false
			c.Models[0].Enabled = false
			c.Models[0].Backends[0].Enabled = false
			c.Users[0].Enabled = false
		}},
		{"no users or models", func(c *berryv1.Config) { c.Models, c.Users = nil, nil }},
		{"aliases", func(c *berryv1.Config) {
			c.Models[0].Aliases = []string{"uno", "one-0613", "meta/llama"} // "meta" is no provider id
			c.Models[1].Aliases = []string{"dos"}
		}},
		{"wildcard without backends", func(c *berryv1.Config) {
			c.Models[1].Wildcard = "b/*"
			c.Models[1].Backends = nil
		}},
		{"wildcard with backends", func(c *berryv1.Config) { c.Models[1].Wildcard = "b/up*" }},
		{"disjoint wildcards", func(c *berryv1.Config) {
			c.Models[0].Wildcard = "a/gpt-4*"
			c.Models[1].Wildcard = "a/gpt-3*"
			c.Models = append(c.Models, &berryv1.Model{Id: "m3", Name: "three", Wildcard: "b/gpt-4*"})
		}},
		{"fallbacks of every class", func(c *berryv1.Config) {
			c.Models[0].Fallbacks = map[string]string{"context_window": "m2", "content_filter": "m2", "any": "m2"}
		}},
		{"fallback chain and diamond", func(c *berryv1.Config) {
			c.Models = append(c.Models, &berryv1.Model{Id: "m3", Name: "three", Wildcard: "b/*",
				Fallbacks: map[string]string{"any": "m2"}})
			c.Models[0].Fallbacks = map[string]string{"context_window": "m2", "any": "m3"}
		}},
		{"fallback to a later, disabled model", func(c *berryv1.Config) {
			c.Models[0].Fallbacks = map[string]string{"any": "m2"}
			c.Models[1].Enabled = false
		}},
		{"affinity", func(c *berryv1.Config) {
			c.Models[0].Affinity = "user"
			c.Models[1].Affinity = "header:x-session-id"
		}},
		{"affinity header not yet lower-cased", func(c *berryv1.Config) { c.Models[0].Affinity = "header:X-Session-Id" }},
		{"prices, budgets and token limits", func(c *berryv1.Config) {
			c.Models[0].Backends[0].Price = &berryv1.Price{InputPerMtok: 2.5, OutputPerMtok: 10, CachedInputPerMtok: 1.25}
			c.Models[1].Backends[0].Price = &berryv1.Price{} // free
			c.Users[0].Budget = &berryv1.Budget{UsdPerDay: 5, UsdPerMonth: 100}
			c.Users[1].Budget = &berryv1.Budget{} // unlimited
			c.Users[0].RateLimit = &berryv1.RateLimit{RequestsPerMinute: 60, TokensPerMinute: 100000, TokensPerDay: math.MaxInt64}
		}},
		{"quota when disconnected: share", func(c *berryv1.Config) { c.Settings.QuotaWhenDisconnected = QuotaShare }},
		{"quota when disconnected: open", func(c *berryv1.Config) { c.Settings.QuotaWhenDisconnected = QuotaOpen }},
		{"quota when disconnected: closed", func(c *berryv1.Config) { c.Settings.QuotaWhenDisconnected = QuotaClosed }},
		{"usage retention", func(c *berryv1.Config) { c.Settings.UsageRetentionDays = 3650 }},
		{"responses_api", func(c *berryv1.Config) {
			c.Providers[0].ResponsesApi = "native"
			c.Providers[1].ResponsesApi = "chat"
			c.Providers = append(c.Providers, &berryv1.Provider{Id: "c", Name: "C", BaseUrl: "https://c", Models: []string{"m"},
				BackendType: "claude", ResponsesApi: "chat"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			if err := Validate(c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestValidateProtoForm(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *berryv1.Config)
		want   []string
	}{
		{"nil settings", func(c *berryv1.Config) { c.Settings = nil }, []string{
			"settings.health_check_interval_seconds: must be > 0",
			"settings.request_timeout_seconds: must be > 0",
			"settings.circuit_breaker_failure_threshold: must be > 0",
			"settings.recovery_check_interval_seconds: must be > 0",
		}},
		{"duplicate provider id", func(c *berryv1.Config) { c.Providers[1].Id = "a" }, []string{
			`providers.a: duplicate provider id "a"`,
			// The first "a" stays the one backends resolve to.
			`models.m2.backends[0].provider: unknown provider "b"`,
		}},
		{"duplicate model id", func(c *berryv1.Config) { c.Models[1].Id = "m1" }, []string{
			`models.m1: duplicate model id "m1"`,
		}},
		{"duplicate user id", func(c *berryv1.Config) { c.Users[1].Id = "u1" }, []string{
			`users.u1: duplicate user id "u1"`,
		}},
		{"missing ids use the index", func(c *berryv1.Config) {
			c.Providers[1].Id = ""
			c.Models[1].Id = ""
			c.Users[1].Id = ""
		}, []string{
			"providers[1].id: required",
			"models[1].id: required",
			`models[1].backends[0].provider: unknown provider "b"`,
			"users[1].id: required",
		}},
		{"ids with odd characters", func(c *berryv1.Config) {
			c.Models[0].Id = "m 1"
			c.Users[0].AllowedModels = []string{"m 1"}
		}, []string{`models."m 1".id: must match [A-Za-z0-9_.-]+`}},
		{"duplicate model name", func(c *berryv1.Config) { c.Models[1].Name = "one" }, []string{
			`models.m2.name: "one" is already used by models.m1; clients select models by name`,
		}},
		{"empty model name", func(c *berryv1.Config) { c.Models[1].Name = "" }, []string{"models.m2.name: required"}},
		{"duplicate token hash", func(c *berryv1.Config) { c.Users[1].TokenSha256 = HashToken("t1") }, []string{
			"users.u2.token: same token as users.u1",
		}},
		{"no token", func(c *berryv1.Config) { c.Users[1].TokenSha256 = nil }, []string{"users.u2.token: required"}},
		{"clear token not hashed", func(c *berryv1.Config) {
			c.Users[1].TokenSha256 = nil
			c.Users[1].Token = "t2"
		}, []string{"users.u2.token_sha256: required; hash the clear token with HashTokens first"}},
		{"clear token not matching hash", func(c *berryv1.Config) { c.Users[1].Token = "other" }, []string{
			"users.u2.token: does not match token_sha256",
		}},
		{"short hash", func(c *berryv1.Config) { c.Users[1].TokenSha256 = []byte{1, 2, 3} }, []string{
			"users.u2.token_sha256: must be 32 bytes, got 3",
		}},
		{"azure without api_version", func(c *berryv1.Config) { c.Providers[0].BackendType = "azure" }, []string{
			`providers.a.api_version: required for backend_type "azure"`,
		}},
		{"header problems", func(c *berryv1.Config) {
			c.Providers[0].Headers = map[string]string{"": "v", "X-A": "a\nb", "X:B": "v", "X-C": "nul\x00"}
		}, []string{
			`providers.a.headers."": invalid HTTP header name`,
			"providers.a.headers.X-A: header value must not contain CR, LF or NUL",
			"providers.a.headers.X-C: header value must not contain CR, LF or NUL",
			`providers.a.headers."X:B": invalid HTTP header name`,
		}},
		{"base_url forms", func(c *berryv1.Config) {
			c.Providers[0].BaseUrl = "https://"
			c.Providers[1].BaseUrl = "::"
		}, []string{
			"providers.a.base_url: must be an absolute http(s) URL",
			"providers.b.base_url: must be an absolute http(s) URL",
		}},
		{"unknown strategy", func(c *berryv1.Config) { c.Models[0].Strategy = "fastest" }, []string{
			`models.m1.strategy: unknown strategy "fastest" (known: ` + strings.Join(balancer.Names(), ", ") + ")",
		}},
		{"no backends", func(c *berryv1.Config) { c.Models[0].Backends = nil }, []string{
			"models.m1.backends: must have at least one backend",
		}},
		{"backend model of another provider", func(c *berryv1.Config) { c.Models[0].Backends[0].Model = "up2" }, []string{
			`models.m1.backends[0].model: "up2" is not in providers.a.models`,
		}},
		{"alias forms", func(c *berryv1.Config) {
			c.Models[0].Aliases = []string{"", "with space", "tab\t", "nul\x00", "a/up", "b/", "fine"}
		}, []string{
			"models.m1.aliases[0]: must not be empty",
			`models.m1.aliases[1]: "with space" must not contain whitespace or control characters`,
			`models.m1.aliases[2]: "tab\t" must not contain whitespace or control characters`,
			`models.m1.aliases[3]: "nul\x00" must not contain whitespace or control characters`,
			`models.m1.aliases[4]: "a/up" must not start with "a/": names of that form address provider "a" directly`,
			`models.m1.aliases[5]: "b/" must not start with "b/": names of that form address provider "b" directly`,
		}},
		{"alias clashes", func(c *berryv1.Config) {
			c.Models[0].Aliases = []string{"one", "two", "x", "x"}
			c.Models[1].Aliases = []string{"x", "y"}
			c.Models = append(c.Models, &berryv1.Model{Id: "m3", Name: "y", Wildcard: "a/*"})
		}, []string{
			`models.m1.aliases[0]: "one" is already the name of models.m1`,
			// The later model's name still wins over the earlier model's alias.
			`models.m1.aliases[1]: "two" is already the name of models.m2`,
			`models.m1.aliases[3]: "x" is already an alias, models.m1.aliases[2]`,
			`models.m2.aliases[0]: "x" is already an alias, models.m1.aliases[2]`,
			`models.m2.aliases[1]: "y" is already the name of models.m3`,
		}},
		{"allowed model given by alias", func(c *berryv1.Config) {
			c.Models[0].Aliases = []string{"uno"}
			c.Users[0].AllowedModels = []string{"uno"}
		}, []string{
			`users.u1.allowed_models: unknown model id "uno" (models.m1.aliases[0] is that alias; allowed_models lists ids)`,
		}},
		{"wildcard forms", func(c *berryv1.Config) {
			c.Models = append(c.Models,
				&berryv1.Model{Id: "w1", Name: "w1", Wildcard: "*"},
				&berryv1.Model{Id: "w2", Name: "w2", Wildcard: "/gpt*"},
				&berryv1.Model{Id: "w3", Name: "w3", Wildcard: "a/gpt"},
				&berryv1.Model{Id: "w4", Name: "w4", Wildcard: "a/*-mini"},
				&berryv1.Model{Id: "w5", Name: "w5", Wildcard: "a/g*p*"},
				&berryv1.Model{Id: "w6", Name: "w6", Wildcard: "a/my model*"},
				&berryv1.Model{Id: "w7", Name: "w7", Wildcard: "nope/*"},
			)
		}, []string{
			`models.w1.wildcard: must be "<provider id>/<prefix>*", got "*"`,
			`models.w2.wildcard: must start with a provider id: "<provider id>/<prefix>*", got "/gpt*"`,
			`models.w3.wildcard: "a/gpt" must have exactly one "*", at the end`,
			`models.w4.wildcard: "a/*-mini" must have exactly one "*", at the end`,
			`models.w5.wildcard: "a/g*p*" must have exactly one "*", at the end`,
			`models.w6.wildcard: "a/my model*" must not contain whitespace or control characters`,
			`models.w7.wildcard: unknown provider "nope"`,
		}},
		{"overlapping wildcards", func(c *berryv1.Config) {
			c.Models[0].Wildcard = "a/gpt-4*"
			c.Models[1].Wildcard = "a/*"
			c.Models = append(c.Models,
				&berryv1.Model{Id: "m3", Name: "three", Wildcard: "b/up*"},
				&berryv1.Model{Id: "m4", Name: "four", Wildcard: "b/up*"},
				&berryv1.Model{Id: "m5", Name: "five", Wildcard: "b/up2*"},
			)
		}, []string{
			`models.m2.wildcard: "a/*" overlaps models.m1.wildcard "a/gpt-4*": a name could match both`,
			`models.m4.wildcard: "b/up*" overlaps models.m3.wildcard "b/up*": a name could match both`,
			`models.m5.wildcard: "b/up2*" overlaps models.m3.wildcard "b/up*": a name could match both`,
		}},
		{"no backends and no wildcard", func(c *berryv1.Config) {
			c.Models[0].Backends = nil
			c.Models[0].Wildcard = ""
		}, []string{"models.m1.backends: must have at least one backend"}},
		{"fallback targets", func(c *berryv1.Config) {
			c.Models[0].Fallbacks = map[string]string{"context_window": "", "content_filter": "m1", "any": "two", "timeout": "m2"}
			c.Models[1].Fallbacks = map[string]string{"any": "zzz"}
		}, []string{
			`models.m1.fallbacks.any: unknown model id "two" (models.m2 has that name; fallbacks name model ids)`,
			"models.m1.fallbacks.content_filter: must not be the model itself",
			"models.m1.fallbacks.context_window: must name a model id",
			`models.m1.fallbacks.timeout: unknown error class "timeout" (known: context_window, content_filter, any)`,
			`models.m2.fallbacks.any: unknown model id "zzz"`,
		}},
		{"odd fallback class", func(c *berryv1.Config) { c.Models[0].Fallbacks = map[string]string{"Any": "m2", "a b": "m2"} }, []string{
			`models.m1.fallbacks.Any: unknown error class "Any" (known: context_window, content_filter, any)`,
			`models.m1.fallbacks."a b": unknown error class "a b" (known: context_window, content_filter, any)`,
		}},
		{"fallback cycle of two", func(c *berryv1.Config) {
			c.Models[0].Fallbacks = map[string]string{"any": "m2"}
			c.Models[1].Fallbacks = map[string]string{"context_window": "m1"}
		}, []string{"models.m1.fallbacks.any: fallback cycle m1 → m2 → m1"}},
		{"fallback cycle across classes, after a chain", func(c *berryv1.Config) {
			c.Models = append(c.Models,
				&berryv1.Model{Id: "m3", Name: "three", Wildcard: "a/*", Fallbacks: map[string]string{"content_filter": "m4"}},
				&berryv1.Model{Id: "m4", Name: "four", Wildcard: "b/*", Fallbacks: map[string]string{"any": "m2"}})
			c.Models[0].Fallbacks = map[string]string{"context_window": "m3"}
			c.Models[1].Fallbacks = map[string]string{"content_filter": "m1"}
		}, []string{"models.m1.fallbacks.context_window: fallback cycle m1 → m3 → m4 → m2 → m1"}},
		{"loops sharing a model each reported", func(c *berryv1.Config) {
			c.Models = append(c.Models,
				&berryv1.Model{Id: "m3", Name: "three", Wildcard: "a/*", Fallbacks: map[string]string{"any": "m2"}})
			c.Models[0].Fallbacks = map[string]string{"any": "m2"}
			c.Models[1].Fallbacks = map[string]string{"content_filter": "m1", "any": "m3"}
		}, []string{
			"models.m1.fallbacks.any: fallback cycle m1 → m2 → m1",
			"models.m2.fallbacks.any: fallback cycle m2 → m3 → m2",
		}},
		{"two separate fallback cycles", func(c *berryv1.Config) {
			c.Models = append(c.Models,
				&berryv1.Model{Id: "m3", Name: "three", Wildcard: "a/*", Fallbacks: map[string]string{"any": "m3x"}},
				&berryv1.Model{Id: "m3x", Name: "three-x", Wildcard: "b/*", Fallbacks: map[string]string{"any": "m3"}})
			c.Models[0].Fallbacks = map[string]string{"any": "m2"}
			c.Models[1].Fallbacks = map[string]string{"any": "m1"}
		}, []string{
			"models.m1.fallbacks.any: fallback cycle m1 → m2 → m1",
			"models.m3.fallbacks.any: fallback cycle m3 → m3x → m3",
		}},
		{"affinity forms", func(c *berryv1.Config) {
			c.Models[0].Affinity = "session"
			c.Models[1].Affinity = "header:"
			c.Models = append(c.Models,
				&berryv1.Model{Id: "m3", Name: "three", Wildcard: "a/*", Affinity: "header:x session"},
				&berryv1.Model{Id: "m4", Name: "four", Wildcard: "b/*", Affinity: "Header:x"},
				&berryv1.Model{Id: "m5", Name: "five", Backends: c.Models[0].Backends, Affinity: "user:x"},
			)
		}, []string{
			`models.m1.affinity: must be "user" or "header:<name>", got "session"`,
			`models.m2.affinity: invalid HTTP header name ""`,
			`models.m3.affinity: invalid HTTP header name "x session"`,
			`models.m4.affinity: must be "user" or "header:<name>", got "Header:x"`,
			`models.m5.affinity: must be "user" or "header:<name>", got "user:x"`,
		}},
		{"responses_api", func(c *berryv1.Config) {
			c.Providers[0].ResponsesApi = "both"
			c.Providers = append(c.Providers,
				&berryv1.Provider{Id: "c", Name: "C", BaseUrl: "https://c", Models: []string{"m"}, BackendType: "claude", ResponsesApi: "native"},
				&berryv1.Provider{Id: "d", Name: "D", BaseUrl: "https://d", Models: []string{"m"}, BackendType: "anthropic", ResponsesApi: "native"})
		}, []string{
			`providers.a.responses_api: unknown mode "both" (known: native, chat)`,
			`providers.c.responses_api: "native" is not possible with backend_type "claude": Anthropic does not serve the Responses API; use "chat" or leave it unset`,
			`providers.d.responses_api: "native" is not possible with backend_type "anthropic": Anthropic does not serve the Responses API; use "chat" or leave it unset`,
		}},
		{"stream_usage", func(c *berryv1.Config) { c.Providers[0].StreamUsage = "never" }, []string{
			`providers.a.stream_usage: unknown value "never" (known: ask, off)`,
		}},
		{"quota when disconnected", func(c *berryv1.Config) { c.Settings.QuotaWhenDisconnected = "Share" }, []string{
			`settings.quota_when_disconnected: unknown mode "Share" (known: share, open, closed)`,
		}},
		{"prices", func(c *berryv1.Config) {
			c.Models[0].Backends[0].Price = &berryv1.Price{InputPerMtok: -1, OutputPerMtok: math.NaN(), CachedInputPerMtok: math.Inf(1)}
			c.Models[1].Backends[0].Price = &berryv1.Price{InputPerMtok: math.Inf(-1), OutputPerMtok: -0.000001}
		}, []string{
			"models.m1.backends[0].price.input_per_mtok: must be a finite number ≥ 0, got -1",
			"models.m1.backends[0].price.output_per_mtok: must be a finite number ≥ 0, got NaN",
			"models.m1.backends[0].price.cached_input_per_mtok: must be a finite number ≥ 0, got +Inf",
			"models.m2.backends[0].price.input_per_mtok: must be a finite number ≥ 0, got -Inf",
			"models.m2.backends[0].price.output_per_mtok: must be a finite number ≥ 0, got -1e-06",
		}},
		{"token limits beyond TOML integers", func(c *berryv1.Config) {
			c.Users[0].RateLimit = &berryv1.RateLimit{TokensPerMinute: math.MaxUint64, TokensPerDay: 1 << 63}
		}, []string{
			"users.u1.rate_limit.tokens_per_minute: must be at most 9223372036854775807, got 18446744073709551615",
			"users.u1.rate_limit.tokens_per_day: must be at most 9223372036854775807, got 9223372036854775808",
		}},
		{"budgets", func(c *berryv1.Config) {
			c.Users[0].Budget = &berryv1.Budget{UsdPerDay: -5, UsdPerMonth: math.Inf(1)}
			c.Users[1].Budget = &berryv1.Budget{UsdPerDay: math.NaN()}
		}, []string{
			"users.u1.budget.usd_per_day: must be a finite number ≥ 0, got -5",
			"users.u1.budget.usd_per_month: must be a finite number ≥ 0, got +Inf",
			"users.u2.budget.usd_per_day: must be a finite number ≥ 0, got NaN",
		}},
		{"many problems, in order", func(c *berryv1.Config) {
			c.Settings.RequestTimeoutSeconds = 0
			c.Providers[1].Name = ""
			c.Models[0].Backends[0].Weight = -1
			c.Models[1].Backends[0].Provider = "nope"
			c.Users[0].AllowedModels = []string{"m1", "zzz"}
		}, []string{
			"settings.request_timeout_seconds: must be > 0",
			"providers.b.name: required",
			"models.m1.backends[0].weight: must be > 0, got -1",
			`models.m2.backends[0].provider: unknown provider "nope"`,
			`users.u1.allowed_models: unknown model id "zzz"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			wantLines(t, errLines(t, Validate(c)), tt.want)
		})
	}
}

func TestValidationErrorFormat(t *testing.T) {
	err := error(&ValidationError{Errors: []FieldError{{"a.b", "bad"}, {"c", "worse"}}})
	if got, want := err.Error(), "invalid config:\na.b: bad\nc: worse"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := errors.Join(errors.New("context"), err)
	if !errors.Is(wrapped, ErrInvalid) {
		t.Error("wrapped ValidationError is not ErrInvalid")
	}
}

func TestParseWildcard(t *testing.T) {
	tests := []struct {
		pattern, provider, prefix string
		ok                        bool
	}{
		{"", "", "", false},
		{"openai-primary/*", "openai-primary", "", true},
		{"openai-primary/gpt-4*", "openai-primary", "gpt-4", true},
		// Upstream names may contain "/" themselves; only the first one splits.
		{"router/meta-llama/*", "router", "meta-llama/", true},
		{"*", "", "", false},
		{"p/", "", "", false},
		{"p/gpt", "", "", false},
		{"/gpt*", "", "", false},
		{"p/*x", "", "", false},
		{"p/g*p*", "", "", false},
		{"p/**", "", "", false},
	}
	for _, tt := range tests {
		provider, prefix, ok := ParseWildcard(tt.pattern)
		if provider != tt.provider || prefix != tt.prefix || ok != tt.ok {
			t.Errorf("ParseWildcard(%q) = %q, %q, %v; want %q, %q, %v",
				tt.pattern, provider, prefix, ok, tt.provider, tt.prefix, tt.ok)
		}
	}
}

func TestParseAffinity(t *testing.T) {
	tests := []struct {
		s, kind, header string
	}{
		{"", "", ""},
		{"user", "user", ""},
		{"header:x-session-id", "header", "x-session-id"},
		{"header:X-Session-ID", "header", "x-session-id"},
		// Only ASCII folds: the Kelvin sign must not pass for a "k".
		{"header:\u212a", "header", "\u212a"},
		{"header:", "header", ""},
		{"User", "", ""},
		{"Header:x", "", ""},
		{"session", "", ""},
	}
	for _, tt := range tests {
		if kind, header := ParseAffinity(tt.s); kind != tt.kind || header != tt.header {
			t.Errorf("ParseAffinity(%q) = %q, %q; want %q, %q", tt.s, kind, header, tt.kind, tt.header)
		}
	}
}
