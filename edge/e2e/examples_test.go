package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berry-gateway/berry/pkg/config"
)

// TestShippedConfigsAreValid keeps the example configs the README and docker-compose
// point at importable as the code changes.
func TestShippedConfigsAreValid(t *testing.T) {
	for _, path := range []string{"docs/examples/local.toml", "docs/deploy/compose.toml"} {
		doc, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil {
			t.Fatal(err)
		}
		if _, warnings, err := config.ParseTOML(doc); err != nil || len(warnings) > 0 {
			t.Errorf("%s: %v (warnings %v)", path, err, warnings)
		}
	}
}
