package routing

import (
	"testing"

	"github.com/berry-gateway/berry/pkg/config"
)

// Model.Fallback indexes by config.FallbackClasses and falls back to the last, "any".
func TestFallbackClassesMatchConfig(t *testing.T) {
	if len(config.FallbackClasses) != NumFallbackClasses || config.FallbackClasses[NumFallbackClasses-1] != "any" {
		t.Fatalf("config.FallbackClasses = %v; routing expects %d classes ending with \"any\"", config.FallbackClasses, NumFallbackClasses)
	}
	any, ctx := &Model{ID: "any"}, &Model{ID: "ctx"}
	m := &Model{}
	m.Fallbacks[0], m.Fallbacks[NumFallbackClasses-1] = ctx, any
	if m.Fallback(0) != ctx || m.Fallback(1) != any || !m.HasFallbacks() || (&Model{}).HasFallbacks() {
		t.Fatal("Fallback does not prefer the class's own fallback over any")
	}
}
