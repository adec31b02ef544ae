package config

import (
	"errors"
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
