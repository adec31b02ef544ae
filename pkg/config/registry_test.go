package config

import (
	"errors"
	"strings"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/provider"
	"github.com/valyala/fasthttp"
)

// regionalKind is a provider kind registered by this file alone, as a new adapter
// would be: its account needs a region in the base URL's query.
type regionalKind struct{}

func (regionalKind) Prepare(a *provider.Account) error {
	if !strings.Contains(a.BaseURL, "region=") {
		return &provider.ConfigError{Field: "base_url", Msg: "must name a region (?region=…)"}
	}
	return nil
}
func (regionalKind) Supports(provider.Op) bool { return false }
func (regionalKind) WriteRequest(*fasthttp.Request, *provider.Account, provider.Op, string, []byte, *jsonscan.Fields) error {
	return errors.New("regionalKind serves nothing")
}
func (regionalKind) TranslateResponse(_ provider.Op, _ int, _, dst []byte) ([]byte, bool, error) {
	return dst, false, nil
}
func (regionalKind) NewStream(provider.Op, string) provider.StreamTranslator { return nil }

func init() { provider.Register("regional-test", regionalKind{}) }

// TestKindsComeFromTheProviderRegistry: a kind registered in one file is valid in
// config, and the settings its adapter refuses are refused at validation, naming the
// field, before any edge sees them.
func TestKindsComeFromTheProviderRegistry(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*berryv1.Config)
		want   []string
	}{
		{"registered kind", func(c *berryv1.Config) {
			c.Providers[0].BackendType, c.Providers[0].BaseUrl = "regional-test", "https://r.example/v1?region=eu"
		}, nil},
		{"its adapter refuses a setting", func(c *berryv1.Config) {
			c.Providers[0].BackendType = "regional-test"
		}, []string{"providers.a.base_url: must name a region (?region=…)"}},
		{"azure without api_version", func(c *berryv1.Config) {
			c.Providers[0].BackendType = "azure"
		}, []string{`providers.a.api_version: required for backend_type "azure"`}},
		{"unregistered kind", func(c *berryv1.Config) { c.Providers[1].BackendType = "cohere" }, []string{
			`providers.b.backend_type: unknown backend type "cohere" (known: ` + strings.Join(provider.Kinds(), ", ") + ")",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			err := Validate(c)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantLines(t, errLines(t, err), tt.want)
		})
	}
}

// TestNormalizeFillsProviderDefaults: the proto form gets the kind and its API version
// as the TOML import does.
func TestNormalizeFillsProviderDefaults(t *testing.T) {
	c := validConfig()
	c.Providers[0].BackendType = ""
	c.Providers[1].BackendType, c.Providers[1].ApiVersion = "azure", ""
	Normalize(c)
	if got := c.Providers[0].GetBackendType(); got != provider.DefaultKind {
		t.Errorf("backend_type %q, want %q", got, provider.DefaultKind)
	}
	if got := c.Providers[1].GetApiVersion(); got != provider.DefaultAzureAPIVersion {
		t.Errorf("azure api_version %q, want %q", got, provider.DefaultAzureAPIVersion)
	}
	if err := Validate(c); err != nil {
		t.Fatal(err)
	}
}
