package config

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// seedTOML is the documented seed example, with every optional key present.
const seedTOML = `
[settings]
health_check_interval_seconds = 30
request_timeout_seconds = 30
max_retries = 3
circuit_breaker_failure_threshold = 5
circuit_breaker_timeout_seconds = 60
recovery_check_interval_seconds = 120
max_request_body_bytes = 4194304
quota_when_disconnected = "share"   # share | open | closed
usage_retention_days = 90

[providers.openai-primary]
name = "OpenAI Primary Account"
base_url = "https://api.openai.com/v1"
api_key = "sk-primary-secret"
models = ["gpt-4", "gpt-4-turbo", "gpt-3.5-turbo"]
enabled = true
timeout_seconds = 30
max_retries = 3
headers = { "X-Extra" = "v" }
backend_type = "openai"
responses_api = "native"
stream_usage = "ask"

[providers.azure-east]
name = "Azure East"
base_url = "https://east.openai.azure.com"
api_key = "azure-secret"
models = ["gpt4-deployment"]
timeout_seconds = 45
backend_type = "azure"
api_version = "2025-01-01"

[models.gpt_4]
name = "gpt-4"
strategy = "weighted_random"
enabled = true
aliases = ["gpt4", "gpt-4-0613"]
fallbacks = { context_window = "openai_any", any = "openai_any" }
affinity = "header:X-Session-Id"

[[models.gpt_4.backends]]
provider = "openai-primary"
model = "gpt-4"
weight = 0.5
priority = 1
enabled = true
tags = ["premium"]
billing_mode = "per_token"
price = { input_per_mtok = 30.0, output_per_mtok = 60.0, cached_input_per_mtok = 15.0 }

[[models.gpt_4.backends]]
provider = "azure-east"
model = "gpt4-deployment"
weight = 2
priority = 2
billing_mode = "per_request"

[models.gpt_4.backends.price]
input_per_mtok = 10
output_per_mtok = 30.5

[models.openai_any]
name = "openai-any"
wildcard = "openai-primary/*"
affinity = "user"

[users.alice]
name = "Alice"
token = "berry-alice-token"
allowed_models = ["gpt_4"]
enabled = true
tags = ["premium"]
rate_limit = { requests_per_minute = 60, requests_per_hour = 1000, requests_per_day = 10000, tokens_per_minute = 100000, tokens_per_day = 2000000 }
budget = { usd_per_day = 5.0, usd_per_month = 100.0 }
`

// seedConfig is what seedTOML must parse to.
func seedConfig() *berryv1.Config {
	return &berryv1.Config{
		Settings: &berryv1.Settings{
			HealthCheckIntervalSeconds:     30,
			RequestTimeoutSeconds:          30,
			MaxRetries:                     3,
			CircuitBreakerFailureThreshold: 5,
			CircuitBreakerTimeoutSeconds:   60,
			RecoveryCheckIntervalSeconds:   120,
			MaxRequestBodyBytes:            4194304,
			QuotaWhenDisconnected:          "share",
			UsageRetentionDays:             90,
		},
		Providers: []*berryv1.Provider{
			{
				Id: "azure-east", Name: "Azure East", BaseUrl: "https://east.openai.azure.com",
				ApiKey: "azure-secret", Models: []string{"gpt4-deployment"}, Enabled: true,
				TimeoutSeconds: 45, MaxRetries: 3, BackendType: "azure", ApiVersion: "2025-01-01",
			},
			{
				Id: "openai-primary", Name: "OpenAI Primary Account", BaseUrl: "https://api.openai.com/v1",
				ApiKey: "sk-primary-secret", Models: []string{"gpt-4", "gpt-4-turbo", "gpt-3.5-turbo"},
				Enabled: true, TimeoutSeconds: 30, MaxRetries: 3,
				Headers: map[string]string{"X-Extra": "v"}, BackendType: "openai", ResponsesApi: "native", StreamUsage: "ask",
			},
		},
		Models: []*berryv1.Model{{
			Id: "gpt_4", Name: "gpt-4", Strategy: "weighted_random", Enabled: true,
			Aliases:   []string{"gpt4", "gpt-4-0613"},
			Fallbacks: map[string]string{"context_window": "openai_any", "any": "openai_any"},
			Affinity:  "header:x-session-id",
			Backends: []*berryv1.Backend{
				{
					Provider: "openai-primary", Model: "gpt-4", Weight: 0.5, Priority: 1, Enabled: true,
					Tags: []string{"premium"}, BillingMode: "per_token",
					Price: &berryv1.Price{InputPerMtok: 30, OutputPerMtok: 60, CachedInputPerMtok: 15},
				},
				{
					Provider: "azure-east", Model: "gpt4-deployment", Weight: 2, Priority: 2, Enabled: true,
					BillingMode: "per_request", Price: &berryv1.Price{InputPerMtok: 10, OutputPerMtok: 30.5},
				},
			},
		}, {
			Id: "openai_any", Name: "openai-any", Strategy: "weighted_random", Enabled: true,
			Wildcard: "openai-primary/*", Affinity: "user",
		}},
		Users: []*berryv1.User{{
			Id: "alice", Name: "Alice", TokenSha256: HashToken("berry-alice-token"),
			AllowedModels: []string{"gpt_4"}, Enabled: true, Tags: []string{"premium"},
			RateLimit: &berryv1.RateLimit{RequestsPerMinute: 60, RequestsPerHour: 1000, RequestsPerDay: 10000,
				TokensPerMinute: 100000, TokensPerDay: 2000000},
			Budget: &berryv1.Budget{UsdPerDay: 5, UsdPerMonth: 100},
		}},
	}
}

// doc builds a small valid seed document; each field is inserted as extra lines into
// the matching table so that a test case states only what it is about.
type doc struct {
	settings, provider, model, backend, user, extra string
}

func (d doc) String() string {
	return fmt.Sprintf(`[settings]
%s
[providers.p]
name = "P"
base_url = "https://p.example/v1"
models = ["up"]
%s
[models.m]
%s
[[models.m.backends]]
provider = "p"
model = "up"
%s
[users.u]
token = "tok"
%s
%s`, d.settings, d.provider, d.model, d.backend, d.user, d.extra)
}

// validConfig is a small valid config in proto form.
func validConfig() *berryv1.Config {
	return &berryv1.Config{
		Settings: &berryv1.Settings{
			HealthCheckIntervalSeconds: 30, RequestTimeoutSeconds: 30, MaxRetries: 3,
			CircuitBreakerFailureThreshold: 5, CircuitBreakerTimeoutSeconds: 60, RecoveryCheckIntervalSeconds: 120,
		},
		Providers: []*berryv1.Provider{
			{Id: "a", Name: "A", BaseUrl: "https://a.example/v1", ApiKey: "sk-a", Models: []string{"up"}, Enabled: true, BackendType: "openai"},
			{Id: "b", Name: "B", BaseUrl: "http://b.example:8080", Models: []string{"up", "up2"}, Enabled: true, BackendType: "gemini"},
		},
		Models: []*berryv1.Model{
			{Id: "m1", Name: "one", Strategy: "weighted_random", Enabled: true, Backends: []*berryv1.Backend{
				{Provider: "a", Model: "up", Weight: 1, Enabled: true, BillingMode: "per_token"},
			}},
			{Id: "m2", Name: "two", Strategy: "weighted_random", Enabled: true, Backends: []*berryv1.Backend{
				{Provider: "b", Model: "up2", Weight: 1, Enabled: true, BillingMode: "per_request"},
			}},
		},
		Users: []*berryv1.User{
			{Id: "u1", Name: "U1", TokenSha256: HashToken("t1"), Enabled: true, AllowedModels: []string{"m1"}},
			{Id: "u2", Name: "U2", TokenSha256: HashToken("t2"), Enabled: true},
		},
	}
}

// errLines returns the "path: msg" lines of a validation error, failing the test if
// err is not one.
func errLines(t *testing.T, err error) []string {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v does not wrap ErrInvalid", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	lines := make([]string, len(ve.Errors))
	for i, fe := range ve.Errors {
		lines[i] = fe.String()
	}
	return lines
}

func wantProto(t *testing.T, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("config mismatch\ngot:\n%s\nwant:\n%s", prototext.Format(got), prototext.Format(want))
	}
}

func wantLines(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("errors:\n got  %q\n want %q", got, want)
	}
}
