// Package routing compiles a config snapshot into the read-only table an edge serves
// requests from. Build binds every backend, model and key of the table to its runtime
// state in the registries, which outlive tables, so a table is usable the moment it
// exists and never changes after; the edge's runtime (package serving) swaps whole
// tables, and a request in flight keeps the table it started with.
package routing

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/quota"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/balancer"
	"github.com/berry-gateway/berry/pkg/config"
	"github.com/berry-gateway/berry/pkg/provider"
)

// Table is one applied snapshot, indexed for the request path.
type Table struct {
	Version  uint64
	Settings Settings

	users      map[[sha256.Size]byte]*User
	models     map[string]*Model // by every name clients may send: names and aliases
	modelsByID map[string]*Model
	providers  map[string]*Provider
	wildcards  []*Model // models with a wildcard, for provider-addressed names
	// ModelNames keeps config order for listings (names, not aliases).
	ModelNames []string
}

// Settings are the snapshot's [settings] as the edge uses them, with the seed
// format's defaults (package config) in place of unset values.
type Settings struct {
	RequestTimeout   time.Duration
	MaxRetries       int
	BreakerThreshold int
	BreakerTimeout   time.Duration
	HealthInterval   time.Duration
	RecoveryInterval time.Duration
	// MaxRequestBody is the largest request body accepted; 0: the edge's own limit.
	MaxRequestBody uint64
	// QuotaWhenDisconnected is what a cut-off edge does with fleet limits
	// (config.QuotaShare, QuotaOpen, QuotaClosed).
	QuotaWhenDisconnected string
}

func settings(s *berryv1.Settings) Settings {
	seconds := func(v, def uint32) time.Duration { return time.Duration(cmp.Or(v, def)) * time.Second }
	return Settings{
		RequestTimeout:        seconds(s.GetRequestTimeoutSeconds(), config.DefaultRequestTimeoutSeconds),
		MaxRetries:            int(s.GetMaxRetries()),
		BreakerThreshold:      int(cmp.Or(s.GetCircuitBreakerFailureThreshold(), config.DefaultCircuitBreakerFailureThreshold)),
		BreakerTimeout:        seconds(s.GetCircuitBreakerTimeoutSeconds(), config.DefaultCircuitBreakerTimeoutSeconds),
		HealthInterval:        seconds(s.GetHealthCheckIntervalSeconds(), config.DefaultHealthCheckIntervalSeconds),
		RecoveryInterval:      seconds(s.GetRecoveryCheckIntervalSeconds(), config.DefaultRecoveryCheckIntervalSeconds),
		MaxRequestBody:        s.GetMaxRequestBodyBytes(),
		QuotaWhenDisconnected: cmp.Or(s.GetQuotaWhenDisconnected(), config.QuotaShare),
	}
}

// User is a gateway API key.
type User struct {
	ID, Name string
	Enabled  bool
	allowed  map[string]bool // model ids; nil means all
	Tags     []string
	// Quota are the key's fleet limits and budgets (quota.Ledger enforces them);
	// HasQuota: any is set.
	Quota    quota.Limits
	HasQuota bool

	// ExpiresAt is when the key stops working; zero means never.
	ExpiresAt time.Time
}

// SeesBackend reports whether the user's tags admit the backend: a user with tags sees
// backends with no tags or a tag in common; a user without tags sees every backend.
func (u *User) SeesBackend(b *Backend) bool {
	if len(u.Tags) == 0 || len(b.Tags) == 0 {
		return true
	}
	for _, t := range b.Tags {
		if slices.Contains(u.Tags, t) {
			return true
		}
	}
	return false
}

// Usable reports whether the key may be used at now: enabled and not expired.
func (u *User) Usable(now time.Time) bool {
	return u.Enabled && (u.ExpiresAt.IsZero() || now.Before(u.ExpiresAt))
}

// Allowed reports whether the user may use the model.
func (u *User) Allowed(m *Model) bool { return u.allowed == nil || u.allowed[m.ID] }

// Model is a client-facing model name and its backends.
type Model struct {
	ID, Name string
	// Aliases are other names clients may send for it.
	Aliases  []string
	Enabled  bool
	Strategy balancer.Strategy
	Backends []*Backend
	// Stats are the model's counters.
	Stats *backends.ModelStats

	// Wildcard serves provider-addressed names ("<provider>/<upstream model>") that
	// match the model's wildcard: one backend standing for every upstream model of
	// that provider with the prefix, its upstream model given per request. nil when
	// the model has no wildcard.
	Wildcard       []*Backend
	wildcardPrefix string

	// MaxPrice is the highest price among its backends, what a request's cost is
	// reserved at before a backend is chosen; nil when none has a price.
	MaxPrice *berryv1.Price

	// Fallbacks are the models a request continues on when every backend failed
	// with an error class, indexed like config.FallbackClasses; nil: none.
	Fallbacks [NumFallbackClasses]*Model

	// Affinity pins requests with the same value to the same backend.
	Affinity Affinity
	// AffinityHeader is the lower-cased header whose value pins (AffinityHeader).
	AffinityHeader string
}

// NumFallbackClasses is len(config.FallbackClasses).
const NumFallbackClasses = 3

// Affinity is what a model's session affinity keys on.
type Affinity uint8

// Affinities.
const (
	AffinityNone   Affinity = iota
	AffinityUser            // the request's "user" field
	AffinityHeader          // a request header
)

// Backend is one upstream model on one provider.
type Backend struct {
	Provider      *Provider
	UpstreamModel string
	Weight        float64
	Priority      int32
	Enabled       bool
	Tags          []string
	PerRequest    bool // billed per call: never probed with paid requests
	// Price of its tokens; nil: no cost is computed.
	Price *berryv1.Price
	// Seed is the stable hash session affinity pins with (balancer.Candidate.Seed).
	Seed uint64
	// wildcard: the backend of a model's wildcard; UpstreamModel is the pattern and
	// each request names its own upstream model.
	wildcard bool
	// State is the backend's runtime state, shared with other config versions that
	// keep this backend.
	State *backends.State
	// Stats count this model's attempts on this backend.
	Stats *backends.RouteStats
}

// Provider is one upstream account: its adapter and the account settings the adapter
// prepared for the request path.
type Provider struct {
	ID, Name string
	Enabled  bool
	Adapter  provider.Adapter
	// GenAIName names the provider kind in OpenTelemetry's GenAI conventions.
	GenAIName  string
	Account    provider.Account
	Timeout    time.Duration
	MaxRetries int
	// ResponsesNative: the provider serves the Responses API itself (responses_api,
	// else its kind's default); otherwise the edge translates it into chat.
	ResponsesNative bool
	// AskStreamUsage: the provider streams OpenAI's format and accepts
	// stream_options, so the edge asks it for the usage of every stream.
	AskStreamUsage bool
}

// Registries hold the runtime state that outlives tables. Build attaches their
// entries to the table and prunes those of things the table no longer has, so one
// Runtime must own them and call Build for one snapshot at a time.
type Registries struct {
	Backends *backends.Registry
}

// Build validates a snapshot, compiles it and binds it to the registries. An error
// means the snapshot must be NACKed and the previous table kept; the registries are
// then unchanged.
func Build(s *berryv1.Snapshot, reg Registries) (*Table, error) {
	if s.GetVersion() == 0 {
		return nil, fmt.Errorf("snapshot has no version")
	}
	cfg := s.GetConfig()
	if cfg == nil {
		return nil, fmt.Errorf("snapshot %d has no config", s.GetVersion())
	}
	if err := config.Validate(cfg); err != nil {
		return nil, fmt.Errorf("snapshot %d: %w", s.GetVersion(), err)
	}
	t := &Table{
		Version:    s.GetVersion(),
		Settings:   settings(cfg.GetSettings()),
		users:      make(map[[sha256.Size]byte]*User, len(cfg.GetUsers())),
		models:     make(map[string]*Model, len(cfg.GetModels())),
		modelsByID: make(map[string]*Model, len(cfg.GetModels())),
		providers:  make(map[string]*Provider, len(cfg.GetProviders())),
	}
	for _, p := range cfg.GetProviders() {
		prov, err := buildProvider(p, t.Settings.RequestTimeout)
		if err != nil {
			return nil, fmt.Errorf("snapshot %d: providers.%s: %w", s.GetVersion(), p.GetId(), err)
		}
		t.providers[p.GetId()] = prov
	}
	for _, m := range cfg.GetModels() {
		strat, err := balancer.New(m.GetStrategy())
		if err != nil {
			return nil, fmt.Errorf("snapshot %d: models.%s.strategy: %w", s.GetVersion(), m.GetId(), err)
		}
		mod := &Model{ID: m.GetId(), Name: m.GetName(), Aliases: m.GetAliases(), Enabled: m.GetEnabled(), Strategy: strat}
		switch kind, header := config.ParseAffinity(m.GetAffinity()); kind {
		case "user":
			mod.Affinity = AffinityUser
		case "header":
			mod.Affinity, mod.AffinityHeader = AffinityHeader, header
		}
		if pid, prefix, ok := config.ParseWildcard(m.GetWildcard()); ok {
			mod.wildcardPrefix = prefix
			mod.Wildcard = []*Backend{{Provider: t.providers[pid], UpstreamModel: prefix + "*", Weight: 1, Enabled: true, wildcard: true}}
			t.wildcards = append(t.wildcards, mod)
		}
		for _, b := range m.GetBackends() {
			mod.Backends = append(mod.Backends, &Backend{
				Provider:      t.providers[b.GetProvider()],
				UpstreamModel: b.GetModel(),
				Weight:        b.GetWeight(),
				Priority:      b.GetPriority(),
				Enabled:       b.GetEnabled(),
				Tags:          b.GetTags(),
				PerRequest:    b.GetBillingMode() == "per_request",
				Price:         b.GetPrice(),
			})
			if p := b.GetPrice(); p != nil && (mod.MaxPrice == nil || costlier(p, mod.MaxPrice)) {
				mod.MaxPrice = p
			}
		}
		t.models[mod.Name] = mod
		for _, a := range mod.Aliases {
			t.models[a] = mod
		}
		t.modelsByID[mod.ID] = mod
		t.ModelNames = append(t.ModelNames, mod.Name)
	}
	for _, m := range cfg.GetModels() {
		mod := t.modelsByID[m.GetId()]
		for i, class := range config.FallbackClasses {
			if id := m.GetFallbacks()[class]; id != "" {
				mod.Fallbacks[i] = t.modelsByID[id]
			}
		}
	}
	for _, u := range cfg.GetUsers() {
		var h [sha256.Size]byte
		copy(h[:], u.GetTokenSha256())
		usr := &User{ID: u.GetId(), Name: u.GetName(), Enabled: u.GetEnabled(), Tags: u.GetTags()}
		if u.GetExpiresAt() != nil {
			usr.ExpiresAt = u.GetExpiresAt().AsTime()
		}
		usr.Quota = quota.LimitsOf(u.GetRateLimit(), u.GetBudget())
		usr.HasQuota = usr.Quota.Any()
		if len(u.GetAllowedModels()) > 0 {
			usr.allowed = make(map[string]bool, len(u.GetAllowedModels()))
			for _, id := range u.GetAllowedModels() {
				usr.allowed[id] = true
			}
		}
		t.users[h] = usr
	}
	t.bind(reg)
	return t, nil
}

// bind attaches the runtime state that outlives the table — backend states, model
// counters, rate limiters — from the registries, creating what is new and pruning what
// the table no longer has.
func (t *Table) bind(reg Registries) {
	var routes []backends.Route
	var bs []*Backend
	var modelIDs []string
	for _, name := range t.ModelNames {
		m := t.models[name]
		modelIDs = append(modelIDs, m.ID)
		for _, b := range m.Backends {
			routes = append(routes, backends.Route{Model: m.ID, Key: b.Key()})
			bs = append(bs, b)
		}
		for _, b := range m.Wildcard {
			routes = append(routes, backends.Route{Model: m.ID, Key: b.Key()})
			bs = append(bs, b)
		}
	}
	sy := reg.Backends.Sync(routes, modelIDs, t.Settings.BreakerThreshold, t.Settings.BreakerTimeout)
	for i, b := range bs {
		b.State, b.Stats = sy.States[i], sy.Routes[i]
		b.Seed = balancer.HashKey([]byte(b.Key().String()))
	}
	for i, id := range modelIDs {
		t.modelsByID[id].Stats = sy.Models[i]
	}
}

// costlier reports whether a costs more than b per token (the larger of its input and
// output prices).
func costlier(a, b *berryv1.Price) bool {
	return max(a.GetInputPerMtok(), a.GetOutputPerMtok()) > max(b.GetInputPerMtok(), b.GetOutputPerMtok())
}

// IsWildcard reports whether b stands for a model's wildcard, whose upstream model
// each request names.
func (b *Backend) IsWildcard() bool { return b.wildcard }

// Key is the backend's identity across config versions and the fleet.
func (b *Backend) Key() config.BackendKey {
	return config.BackendKey{Provider: b.Provider.ID, Model: b.UpstreamModel}
}

// Providers returns the table's providers sorted by id.
func (t *Table) Providers() []*Provider {
	out := make([]*Provider, 0, len(t.providers))
	for _, p := range t.providers {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *Provider) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// UserByToken finds the user whose token hashes to the given token. Looking up by
// SHA-256 means the comparison never runs over the secret itself, so its timing says
// nothing about the stored token.
func (t *Table) UserByToken(token []byte) *User {
	return t.users[sha256.Sum256(token)]
}

// Model finds a model by the name clients send; name may alias a request buffer.
func (t *Table) Model(name []byte) *Model { return t.models[string(name)] }

// ProviderAddressed finds the model whose wildcard admits a provider-addressed name
// ("<provider id>/<upstream model>") and returns it with the upstream model; nil
// when none does. Names are checked against Model first: a configured name or alias
// wins over a wildcard.
func (t *Table) ProviderAddressed(name string) (*Model, string) {
	pid, upstream, ok := strings.Cut(name, "/")
	if !ok || upstream == "" {
		return nil, ""
	}
	for _, m := range t.wildcards {
		if m.Wildcard[0].Provider.ID == pid && strings.HasPrefix(upstream, m.wildcardPrefix) {
			return m, upstream
		}
	}
	return nil, ""
}

// Fallback is the model a request continues on after every backend failed with the
// error class at index class of config.FallbackClasses: that class's fallback, else
// the "any" one.
func (m *Model) Fallback(class int) *Model {
	if f := m.Fallbacks[class]; f != nil {
		return f
	}
	return m.Fallbacks[NumFallbackClasses-1]
}

// HasFallbacks reports whether the model names any fallback.
func (m *Model) HasFallbacks() bool {
	for _, f := range m.Fallbacks {
		if f != nil {
			return true
		}
	}
	return false
}

// ModelByID finds a model by its config id.
func (t *Table) ModelByID(id string) *Model { return t.modelsByID[id] }

// ModelByName is Model for a string.
func (t *Table) ModelByName(name string) *Model { return t.models[name] }

func buildProvider(p *berryv1.Provider, requestTimeout time.Duration) (*Provider, error) {
	prov := &Provider{
		ID: p.GetId(), Name: p.GetName(), Enabled: p.GetEnabled(),
		Timeout:    time.Duration(p.GetTimeoutSeconds()) * time.Second,
		MaxRetries: int(p.GetMaxRetries()),
		Account:    config.Account(p),
	}
	if prov.Timeout <= 0 {
		prov.Timeout = requestTimeout
	}
	a, err := provider.Lookup(p.GetBackendType())
	if err != nil {
		return nil, err
	}
	if err := a.Prepare(&prov.Account); err != nil {
		return nil, err
	}
	prov.Adapter = a
	prov.GenAIName = provider.GenAIName(p.GetBackendType())
	switch p.GetResponsesApi() {
	case "native":
		prov.ResponsesNative = true
	case "":
		prov.ResponsesNative = a.Supports(provider.OpResponses)
	}
	prov.AskStreamUsage = p.GetStreamUsage() != "off" && a.NewStream(provider.OpChat, "") == nil
	return prov, nil
}
