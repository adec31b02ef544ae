package e2e

import (
	"os"
	"testing"

	"github.com/berry-gateway/berry/pkg/config"
)

// TestProvidersExampleIsValid keeps docs/examples/providers.toml (every backend_type in
// one pool, referenced from docs/providers.md) importable without warnings.
func TestProvidersExampleIsValid(t *testing.T) {
	doc, err := os.ReadFile("../../docs/examples/providers.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, warnings, err := config.ParseTOML(doc)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("%v (warnings %v)", err, warnings)
	}
	kinds := map[string]bool{}
	for _, p := range c.GetProviders() {
		kinds[p.GetBackendType()] = true
	}
	for _, k := range []string{"azure", "anthropic", "gemini"} {
		if !kinds[k] {
			t.Errorf("the example has no %s provider", k)
		}
	}
}
