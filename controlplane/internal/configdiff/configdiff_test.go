package configdiff

import (
	"strings"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"google.golang.org/protobuf/proto"
)

const base = `
[settings]
request_timeout_seconds = 30
[providers.openai]
name = "OpenAI"
base_url = "https://api.openai.com/v1"
api_key = "sk-secret-one"
models = ["gpt-4o", "gpt-4o-mini"]
headers = { "X-Api-Key" = "hdr-secret", "X-Team" = "a" }
[models.gpt]
name = "gpt"
[[models.gpt.backends]]
provider = "openai"
model = "gpt-4o"
weight = 1
[[models.gpt.backends]]
provider = "openai"
model = "gpt-4o-mini"
weight = 2
[users.alice]
token = "alice-token"
`

func parse(t *testing.T, doc string) *berryv1.Config {
	t.Helper()
	cfg, _, err := config.ParseTOML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestChanges(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *berryv1.Config)
		want []string // "kind path before -> after"
	}{
		{"equal", func(*berryv1.Config) {}, nil},
		{"setting", func(c *berryv1.Config) { c.Settings.RequestTimeoutSeconds = 60 },
			[]string{"changed settings.request_timeout_seconds 30 -> 60"}},
		{"backend weight", func(c *berryv1.Config) { c.Models[0].Backends[1].Weight = 5 },
			[]string{"changed models.gpt.backends[1].weight 2 -> 5"}},
		{"api key rotated is shown redacted", func(c *berryv1.Config) { c.Providers[0].ApiKey = "sk-secret-two" },
			[]string{"changed providers.openai.api_key REDACTED -> REDACTED"}},
		{"secret header value redacted", func(c *berryv1.Config) { c.Providers[0].Headers["X-Api-Key"] = "hdr-secret-2" },
			[]string{`changed providers.openai.headers {"X-Api-Key" = "REDACTED", "X-Team" = "a"} -> {"X-Api-Key" = "REDACTED", "X-Team" = "a"}`}},
		{"token changed", func(c *berryv1.Config) { c.Users[0].TokenSha256 = config.HashToken("other") },
			[]string{"changed users.alice.token_sha256 REDACTED -> REDACTED"}},
		{"user disabled", func(c *berryv1.Config) { c.Users[0].Enabled = false },
			[]string{"changed users.alice.enabled true -> false"}},
		{"user removed", func(c *berryv1.Config) { c.Users = nil }, []string{"removed users.alice"}},
		{"user added", func(c *berryv1.Config) {
			c.Users = append(c.Users, &berryv1.User{Id: "bob", Name: "Bob", TokenSha256: config.HashToken("bob")})
		}, []string{"added users.bob"}},
		{"aliases added", func(c *berryv1.Config) { c.Models[0].Aliases = []string{"gpt4", "gpt-4"} },
			[]string{`added models.gpt.aliases  -> ["gpt4", "gpt-4"]`}},
		{"fallbacks changed", func(c *berryv1.Config) {
			c.Models[0].Fallbacks = map[string]string{"context_window": "big", "any": "other"}
		}, []string{`added models.gpt.fallbacks  -> {"any" = "other", "context_window" = "big"}`}},
		{"wildcard and affinity set", func(c *berryv1.Config) {
			c.Models[0].Wildcard = "openai/*"
			c.Models[0].Affinity = "header:x-session-id"
		}, []string{`changed models.gpt.affinity "" -> "header:x-session-id"`, `changed models.gpt.wildcard "" -> "openai/*"`}},
		{"responses_api set", func(c *berryv1.Config) { c.Providers[0].ResponsesApi = "chat" },
			[]string{`changed providers.openai.responses_api "" -> "chat"`}},
		{"backend added", func(c *berryv1.Config) {
			c.Models[0].Backends = c.Models[0].Backends[:1]
		}, []string{"changed models.gpt.backends"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := parse(t, base)
			b := proto.Clone(a).(*berryv1.Config)
			tt.edit(b)
			got := Changes(a, b)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d changes %v, want %v", len(got), got, tt.want)
			}
			for i, c := range got {
				line := c.Kind + " " + c.Path + " " + c.Before + " -> " + c.After
				if !strings.HasPrefix(line, tt.want[i]) {
					t.Errorf("change %d = %q, want prefix %q", i, line, tt.want[i])
				}
				for _, secret := range []string{"sk-secret", "hdr-secret", "alice-token"} {
					if strings.Contains(line, secret) {
						t.Errorf("change %q shows secret %q", line, secret)
					}
				}
			}
		})
	}
}

func TestChangesFromNothing(t *testing.T) {
	b := parse(t, base)
	got := Changes(nil, b)
	paths := map[string]string{}
	for _, c := range got {
		paths[c.Path] = c.Kind
		if strings.Contains(c.After, "sk-secret") || strings.Contains(c.After, "hdr-secret") {
			t.Errorf("%s shows a secret: %s", c.Path, c.After)
		}
	}
	for _, p := range []string{"providers.openai", "models.gpt", "users.alice"} {
		if paths[p] != Added {
			t.Errorf("%s: kind %q, want added (all: %v)", p, paths[p], got)
		}
	}
	if len(Changes(b, nil)) == 0 {
		t.Error("no changes from a config to nothing")
	}
}
