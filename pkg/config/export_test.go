package config

import (
	"math"
	"strings"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestExportRoundTrip(t *testing.T) {
	tricky := func() *berryv1.Config {
		c := validConfig()
		c.Settings.MaxRequestBodyBytes = 1 << 40
		c.Providers[0].Id = "odd.id"
		c.Providers[0].Name = "Quotes \" and \\ and ünïcödé\tand\u007f"
		c.Providers[0].Headers = map[string]string{"X-Extra": "tab\there", "OpenAI-Organization": `"org"`}
		c.Providers[0].TimeoutSeconds = 0
		c.Providers[0].MaxRetries = 9
		c.Providers[1].BackendType = "azure"
		c.Providers[1].ApiVersion = "2024-10-21"
		c.Providers[1].Enabled = false
		c.Models[0].Name = "" + "name with spaces"
		c.Models[0].Backends[0].Provider = "odd.id"
		c.Models[0].Backends[0].Weight = 0.1
		c.Models[0].Backends[0].Priority = -5
		c.Models[0].Backends[0].Tags = []string{"a", "b c"}
		c.Models[0].Backends = append(c.Models[0].Backends,
			&berryv1.Backend{Provider: "b", Model: "up", Weight: 1e-300, Enabled: false, BillingMode: "per_request"},
			&berryv1.Backend{Provider: "b", Model: "up2", Weight: 3, Priority: 2147483647, Enabled: true, BillingMode: "per_token"})
		c.Models[1].Enabled = false
		c.Providers[0].ResponsesApi = "chat"
		c.Providers[1].ResponsesApi = "native"
		c.Models[0].Aliases = []string{`"quoted"\back\slash`, "ünï"}
		c.Models[0].Affinity = "header:x-session-id"
		c.Models[0].Fallbacks = map[string]string{"any": "m2", "context_window": "m3", "content_filter": "m2"}
		c.Models[1].Aliases = []string{"vendor/two"}
		c.Models[1].Affinity = "user"
		c.Models = append(c.Models, &berryv1.Model{Id: "m3", Name: "three", Strategy: testStrategy,
			Wildcard: "odd.id/gpt-4*", Fallbacks: map[string]string{"any": "m2"}})
		c.Users[0].Name = ""
		c.Users[0].Tags = []string{"t"}
		c.Users[0].RateLimit = &berryv1.RateLimit{}
		c.Users[1].RateLimit = &berryv1.RateLimit{RequestsPerMinute: 1, RequestsPerHour: 4294967295}
		c.Users[1].AllowedModels = []string{"m1", "m2"}
		c.Users[1].ExpiresAt = timestamppb.New(time.Date(2027, 3, 4, 5, 6, 7, 890, time.UTC))
		c.Settings.QuotaWhenDisconnected = "closed"
		c.Settings.UsageRetentionDays = 4294967295
		c.Models[0].Backends[0].Price = &berryv1.Price{} // free, not unpriced
		c.Models[0].Backends[1].Price = &berryv1.Price{InputPerMtok: 0.075, OutputPerMtok: 1e-9, CachedInputPerMtok: 1e300}
		c.Models[0].Backends[2].Price = &berryv1.Price{CachedInputPerMtok: 0.5}
		c.Users[0].Budget = &berryv1.Budget{}
		c.Users[1].Budget = &berryv1.Budget{UsdPerMonth: 0.1}
		c.Users[0].RateLimit.TokensPerDay = math.MaxInt64
		c.Users[1].RateLimit.TokensPerMinute = 1
		// Normalized form is sorted by id.
		c.Providers[0], c.Providers[1] = c.Providers[1], c.Providers[0]
		return c
	}
	fromSeed, _, err := ParseTOML([]byte(seedTOML))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  *berryv1.Config
	}{
		{"seed", fromSeed},
		{"valid proto", validConfig()},
		{"tricky values", tricky()},
		{"empty", &berryv1.Config{Settings: validConfig().Settings}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Validate(tt.cfg); err != nil {
				t.Fatalf("test config invalid: %v", err)
			}
			doc, err := ExportTOML(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			back, warnings, err := ParseTOML(doc)
			if err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			if len(warnings) > 0 {
				t.Errorf("warnings on re-import: %q", warnings)
			}
			wantProto(t, back, tt.cfg)
			again, err := ExportTOML(back)
			if err != nil || string(again) != string(doc) {
				t.Errorf("export not stable (err %v):\n%s\n---\n%s", err, doc, again)
			}
		})
	}
}

func TestExportLayout(t *testing.T) {
	cfg, _, err := ParseTOML([]byte(seedTOML))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ExportTOML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	for _, want := range []string{
		"[settings]\nhealth_check_interval_seconds = 30\n",
		"[providers.openai-primary]\nname = \"OpenAI Primary Account\"\n",
		"api_key = \"sk-primary-secret\"\n",
		"headers = { X-Extra = \"v\" }\n",
		"[models.gpt_4]\nname = \"gpt-4\"\nstrategy = \"weighted_random\"\nenabled = true\n",
		"[[models.gpt_4.backends]]\nprovider = \"openai-primary\"\nmodel = \"gpt-4\"\nweight = 0.5\n",
		"weight = 2.0\n",
		"[users.alice]\nname = \"Alice\"\ntoken_sha256 = \"",
		"max_request_body_bytes = 4194304\nquota_when_disconnected = \"share\"\nusage_retention_days = 90\n\n",
		"rate_limit = { requests_per_minute = 60, requests_per_hour = 1000, requests_per_day = 10000, " +
			"tokens_per_minute = 100000, tokens_per_day = 2000000 }\nbudget = { usd_per_day = 5.0, usd_per_month = 100.0 }\n",
		"billing_mode = \"per_token\"\nprice = { input_per_mtok = 30.0, output_per_mtok = 60.0, cached_input_per_mtok = 15.0 }\n",
		"billing_mode = \"per_request\"\nprice = { input_per_mtok = 10.0, output_per_mtok = 30.5 }\n",
		"backend_type = \"openai\"\nresponses_api = \"native\"\n",
		"enabled = true\naliases = [\"gpt4\", \"gpt-4-0613\"]\n" +
			"fallbacks = { any = \"openai_any\", context_window = \"openai_any\" }\n" +
			"affinity = \"header:x-session-id\"\n\n[[models.gpt_4.backends]]\n",
		"[models.openai_any]\nname = \"openai-any\"\nstrategy = \"weighted_random\"\nenabled = true\n" +
			"wildcard = \"openai-primary/*\"\naffinity = \"user\"\n\n[users.alice]\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("export lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "berry-alice-token") || strings.Contains(text, "\ntoken =") {
		t.Errorf("export contains a clear token:\n%s", text)
	}
}

func TestExportClearTokenIsHashed(t *testing.T) {
	c := validConfig()
	c.Users[0].TokenSha256 = nil
	c.Users[0].Token = "t1"
	doc, err := ExportTOML(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(doc), `"t1"`) {
		t.Fatalf("clear token exported:\n%s", doc)
	}
	back, _, err := ParseTOML(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := validConfig()
	if !proto.Equal(back.GetUsers()[0], want.GetUsers()[0]) {
		t.Errorf("users.u1 = %v, want %v", back.GetUsers()[0], want.GetUsers()[0])
	}
}

func TestExportErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *berryv1.Config)
		want   string
	}{
		{"duplicate provider id", func(c *berryv1.Config) { c.Providers[1].Id = "a" }, "providers.a: duplicate providers id"},
		{"duplicate user id", func(c *berryv1.Config) { c.Users[1].Id = "u1" }, "users.u1: duplicate users id"},
		{"invalid UTF-8", func(c *berryv1.Config) { c.Models[0].Name = "bad\xff" }, "not valid UTF-8"},
		{"invalid UTF-8 in a table key", func(c *berryv1.Config) { c.Models[0].Fallbacks = map[string]string{"bad\xff": "m2"} },
			`fallbacks key "bad\xff" is not valid UTF-8`},
		{"body limit beyond TOML integers", func(c *berryv1.Config) { c.Settings.MaxRequestBodyBytes = 1 << 63 },
			"max_request_body_bytes = 9223372036854775808 does not fit a TOML integer"},
		{"token limit beyond TOML integers", func(c *berryv1.Config) { c.Users[0].RateLimit = &berryv1.RateLimit{TokensPerDay: 1 << 63} },
			"tokens_per_day = 9223372036854775808 does not fit a TOML integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			_, err := ExportTOML(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// New keys are written only when set, so configs that do not use them export as
// they did before they existed.
func TestExportOmitsUnsetUsageKeys(t *testing.T) {
	c := validConfig()
	c.Users[0].RateLimit = &berryv1.RateLimit{RequestsPerMinute: 5}
	doc, err := ExportTOML(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"quota_when_disconnected", "usage_retention_days", "price", "budget", "tokens_per_"} {
		if strings.Contains(string(doc), absent) {
			t.Errorf("export of a config without %s writes it:\n%s", absent, doc)
		}
	}
	if want := "rate_limit = { requests_per_minute = 5, requests_per_hour = 0, requests_per_day = 0 }\n"; !strings.Contains(string(doc), want) {
		t.Errorf("export lacks %q:\n%s", want, doc)
	}
}
