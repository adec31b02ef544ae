package config

import (
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

func TestNormalizeMatchesParse(t *testing.T) {
	fromTOML, _, err := ParseTOML([]byte(doc{
		provider: `responses_api = "chat"`,
		model:    "aliases = [\"mm\"]\naffinity = \"header:X-Session-Id\"\nfallbacks = { any = \"w\" }",
		extra:    "[models.w]\nwildcard = \"p/*\"",
	}.String()))
	if err != nil {
		t.Fatal(err)
	}
	// The same document built by hand: no settings, clear token, unsorted, affinity
	// header as written.
	built := &berryv1.Config{
		Users: []*berryv1.User{{Id: "u", Token: "tok", Enabled: true}},
		Models: []*berryv1.Model{
			{Id: "w", Name: "w", Strategy: "weighted_random", Enabled: true, Wildcard: "p/*"},
			{Id: "m", Name: "m", Strategy: "weighted_random", Enabled: true,
				Aliases: []string{"mm"}, Affinity: "header:X-Session-Id", Fallbacks: map[string]string{"any": "w"},
				Backends: []*berryv1.Backend{{Provider: "p", Model: "up", Weight: 1, Enabled: true, BillingMode: "per_token"}}},
		},
		Providers: []*berryv1.Provider{{Id: "p", Name: "P", BaseUrl: "https://p.example/v1", Models: []string{"up"},
			Enabled: true, TimeoutSeconds: fromTOML.Providers[0].TimeoutSeconds, MaxRetries: fromTOML.Providers[0].MaxRetries,
			BackendType: "openai", ResponsesApi: "chat"}},
	}
	Normalize(built)
	if err := Validate(built); err != nil {
		t.Fatal(err)
	}
	wantProto(t, built, fromTOML)
}
