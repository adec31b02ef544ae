package config

import (
	"cmp"
	"slices"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// Normalize brings a hand-built proto-form config (the admin API's input) into the
// form ParseTOML produces, so that stored configs compare and diff alike whatever
// their source: missing settings take the seed format's defaults (a zero value in a
// field that must be positive counts as missing), providers their kind's defaults,
// lists are sorted by id, affinity header names are lower-cased, and clear user
// tokens are hashed. It does not validate; call Validate after it.
func Normalize(cfg *berryv1.Config) {
	if cfg.Settings == nil {
		cfg.Settings = &berryv1.Settings{MaxRetries: DefaultMaxRetries, CircuitBreakerTimeoutSeconds: DefaultCircuitBreakerTimeoutSeconds}
	}
	s := cfg.Settings
	s.HealthCheckIntervalSeconds = cmp.Or(s.HealthCheckIntervalSeconds, DefaultHealthCheckIntervalSeconds)
	s.RequestTimeoutSeconds = cmp.Or(s.RequestTimeoutSeconds, DefaultRequestTimeoutSeconds)
	s.CircuitBreakerFailureThreshold = cmp.Or(s.CircuitBreakerFailureThreshold, DefaultCircuitBreakerFailureThreshold)
	s.RecoveryCheckIntervalSeconds = cmp.Or(s.RecoveryCheckIntervalSeconds, DefaultRecoveryCheckIntervalSeconds)
	for _, p := range cfg.Providers {
		providerDefaults(p)
	}
	for _, m := range cfg.Models {
		m.Affinity = normalizeAffinity(m.Affinity)
	}
	slices.SortStableFunc(cfg.Providers, func(a, b *berryv1.Provider) int { return cmp.Compare(a.GetId(), b.GetId()) })
	slices.SortStableFunc(cfg.Models, func(a, b *berryv1.Model) int { return cmp.Compare(a.GetId(), b.GetId()) })
	slices.SortStableFunc(cfg.Users, func(a, b *berryv1.User) int { return cmp.Compare(a.GetId(), b.GetId()) })
	HashTokens(cfg)
}
