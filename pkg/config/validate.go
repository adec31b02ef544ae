package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/balancer"
	"github.com/berry-gateway/berry/pkg/provider"
)

// Ids end up in paths, metrics labels and URLs, so they are kept to characters that
// need no escaping anywhere.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Validate checks a config in proto form and returns nil or a *ValidationError
// (wrapping ErrInvalid) with every problem found, in seed-format terms.
//
// It accepts what ParseTOML produces and also hand-built proto input, so it checks
// what the TOML form makes impossible (duplicate ids) and treats an empty
// backend_type, strategy or billing_mode as the default, as edges do.
func Validate(cfg *berryv1.Config) error {
	v := validator{
		providers:  map[string]*berryv1.Provider{},
		models:     map[string]*berryv1.Model{},
		modelNames: map[string]string{},
		aliasPaths: map[string]string{},
		userIDs:    map[string]bool{},
		userTokens: map[[sha256.Size]byte]string{},
	}
	v.settings(cfg.GetSettings())
	for i, p := range cfg.GetProviders() {
		v.provider(i, p)
	}
	for i, m := range cfg.GetModels() {
		v.model(i, m)
	}
	// Aliases and fallbacks refer to models that may come later in the list.
	for i, m := range cfg.GetModels() {
		v.aliases(i, m)
	}
	for i, m := range cfg.GetModels() {
		v.fallbacks(i, m)
	}
	v.fallbackCycles(cfg.GetModels())
	for i, u := range cfg.GetUsers() {
		v.user(i, u)
	}
	if len(v.errs) > 0 {
		return &ValidationError{Errors: v.errs}
	}
	return nil
}

type validator struct {
	errs       []FieldError
	providers  map[string]*berryv1.Provider // by id; first one wins on duplicates
	models     map[string]*berryv1.Model    // by id
	modelNames map[string]string            // model name -> path of the model using it
	aliasPaths map[string]string            // alias -> path of the aliases entry using it
	wildcards  []wildcardUse                // valid wildcards seen so far
	userIDs    map[string]bool
	userTokens map[[sha256.Size]byte]string // token hash -> path of the user using it
}

func (v *validator) errorf(path, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) settings(s *berryv1.Settings) {
	for _, f := range []struct {
		name string
		val  uint32
	}{
		{"health_check_interval_seconds", s.GetHealthCheckIntervalSeconds()},
		{"request_timeout_seconds", s.GetRequestTimeoutSeconds()},
		{"circuit_breaker_failure_threshold", s.GetCircuitBreakerFailureThreshold()},
		{"recovery_check_interval_seconds", s.GetRecoveryCheckIntervalSeconds()},
	} {
		if f.val == 0 {
			v.errorf("settings."+f.name, "must be > 0")
		}
	}
	if q := s.GetQuotaWhenDisconnected(); q != "" && !slices.Contains(quotaModes, q) {
		v.errorf("settings.quota_when_disconnected", "unknown mode %q (known: %s)", q, strings.Join(quotaModes, ", "))
	}
}

// amount checks a price or a budget in USD: a cost computed from a negative, NaN or
// infinite price is meaningless, and such a budget would refuse or admit everything.
func (v *validator) amount(path string, x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
		v.errorf(path, "must be a finite number ≥ 0, got %s", strconv.FormatFloat(x, 'g', -1, 64))
	}
}

// id checks an entry's id and reports whether it is usable as a key, so that a
// duplicate does not shadow the first entry with that id.
func (v *validator) id(section, kind string, i int, id string, seen bool) bool {
	path := tablePath(section, i, id)
	if id == "" {
		v.errorf(path+".id", "required")
		return false
	}
	if !idPattern.MatchString(id) {
		v.errorf(path+".id", "must match %s", strings.Trim(idPattern.String(), "^$"))
	}
	if seen {
		v.errorf(path, "duplicate %s id %q", kind, id)
		return false
	}
	return true
}

func (v *validator) provider(i int, p *berryv1.Provider) {
	path := tablePath("providers", i, p.GetId())
	if _, dup := v.providers[p.GetId()]; v.id("providers", "provider", i, p.GetId(), dup) {
		v.providers[p.GetId()] = p
	}
	if p.GetName() == "" {
		v.errorf(path+".name", "required")
	}
	v.adapter(path, p)
	v.responsesAPI(path, p)
	if su := p.GetStreamUsage(); su != "" && su != "ask" && su != "off" {
		v.errorf(path+".stream_usage", `unknown value %q (known: ask, off)`, su)
	}
	if len(p.GetModels()) == 0 {
		v.errorf(path+".models", "must list at least one model")
	}
	for j, m := range p.GetModels() {
		switch {
		case m == "":
			v.errorf(fmt.Sprintf("%s.models[%d]", path, j), "must not be empty")
		case slices.Contains(p.GetModels()[:j], m):
			v.errorf(fmt.Sprintf("%s.models[%d]", path, j), "duplicate model %q", m)
		}
	}
	for _, name := range sortedKeys(p.GetHeaders()) {
		hpath := path + ".headers." + tomlKey(name)
		if !validHeaderName(name) {
			v.errorf(hpath, "invalid HTTP header name")
		}
		if strings.ContainsAny(p.GetHeaders()[name], "\r\n\x00") {
			v.errorf(hpath, "header value must not contain CR, LF or NUL")
		}
	}
}

// adapter asks the provider's adapter, found by kind in the provider registry, to
// check the provider's settings: the kinds the registry holds are the valid ones, and
// a setting an edge's adapter would refuse is refused here, at import.
func (v *validator) adapter(path string, p *berryv1.Provider) {
	a, err := provider.Lookup(p.GetBackendType())
	if err != nil {
		v.errorf(path+".backend_type", "%v", err)
		return
	}
	acct := Account(p)
	var ce *provider.ConfigError
	switch err := a.Prepare(&acct); {
	case errors.As(err, &ce):
		v.errorf(path+"."+ce.Field, "%s", ce.Msg)
	case err != nil:
		v.errorf(path, "%v", err)
	}
}

func (v *validator) model(i int, m *berryv1.Model) {
	path := tablePath("models", i, m.GetId())
	if _, dup := v.models[m.GetId()]; v.id("models", "model", i, m.GetId(), dup) {
		v.models[m.GetId()] = m
	}
	switch name := m.GetName(); {
	case name == "":
		v.errorf(path+".name", "required")
	case v.modelNames[name] != "":
		v.errorf(path+".name", "%q is already used by %s; clients select models by name", name, v.modelNames[name])
	default:
		v.modelNames[name] = path
	}
	if s := m.GetStrategy(); s != "" && !balancer.Known(s) {
		v.errorf(path+".strategy", "unknown strategy %q (known: %s)", s, strings.Join(balancer.Names(), ", "))
	}
	// A wildcard routes by itself; without one, a model with no backends could
	// serve nothing.
	if len(m.GetBackends()) == 0 && m.GetWildcard() == "" {
		v.errorf(path+".backends", "must have at least one backend")
	}
	for j, b := range m.GetBackends() {
		v.backend(fmt.Sprintf("%s.backends[%d]", path, j), b)
	}
	v.wildcard(path, m.GetWildcard())
	v.affinity(path, m.GetAffinity())
}

// responsesAPI checks a provider's responses_api; the default for "" belongs to the
// provider's adapter, not to the config.
func (v *validator) responsesAPI(path string, p *berryv1.Provider) {
	switch mode := p.GetResponsesApi(); {
	case mode == "":
	case !slices.Contains(responsesAPIModes, mode):
		v.errorf(path+".responses_api", "unknown mode %q (known: %s)", mode, strings.Join(responsesAPIModes, ", "))
	case mode == "native" && slices.Contains(noNativeResponses, p.GetBackendType()):
		v.errorf(path+".responses_api", `"native" is not possible with backend_type %q: Anthropic does not serve the Responses API; use "chat" or leave it unset`, p.GetBackendType())
	}
}

type wildcardUse struct {
	provider, prefix, pattern, path string
}

func (v *validator) wildcard(path, pattern string) {
	if pattern == "" {
		return
	}
	path += ".wildcard"
	provider, prefix, ok := ParseWildcard(pattern)
	switch {
	case !ok && !strings.Contains(pattern, "/"):
		v.errorf(path, `must be "<provider id>/<prefix>*", got %q`, pattern)
		return
	case !ok && strings.HasPrefix(pattern, "/"):
		v.errorf(path, `must start with a provider id: "<provider id>/<prefix>*", got %q`, pattern)
		return
	case !ok:
		v.errorf(path, `%q must have exactly one "*", at the end`, pattern)
		return
	case !cleanName(prefix):
		v.errorf(path, "%q must not contain whitespace or control characters", pattern)
		return
	}
	if _, known := v.providers[provider]; !known {
		v.errorf(path, "unknown provider %q", provider)
		return
	}
	for _, w := range v.wildcards {
		if w.provider == provider && (strings.HasPrefix(prefix, w.prefix) || strings.HasPrefix(w.prefix, prefix)) {
			v.errorf(path, "%q overlaps %s %q: a name could match both", pattern, w.path, w.pattern)
			return
		}
	}
	v.wildcards = append(v.wildcards, wildcardUse{provider, prefix, pattern, path})
}

func (v *validator) affinity(path, s string) {
	switch kind, header := ParseAffinity(s); {
	case s == "", kind == "user":
	case kind == "":
		v.errorf(path+".affinity", `must be "user" or "header:<name>", got %q`, s)
	case !validHeaderName(header):
		v.errorf(path+".affinity", "invalid HTTP header name %q", strings.TrimPrefix(s, affinityHeaderPrefix))
	}
}

// aliases runs after every model's name is known: a name always wins over an alias,
// so the alias is the one reported whichever model comes first.
func (v *validator) aliases(i int, m *berryv1.Model) {
	path := tablePath("models", i, m.GetId())
	for j, a := range m.GetAliases() {
		apath := fmt.Sprintf("%s.aliases[%d]", path, j)
		provider, _, hasSlash := strings.Cut(a, "/")
		_, isProvider := v.providers[provider]
		switch {
		case a == "":
			v.errorf(apath, "must not be empty")
		case !cleanName(a):
			v.errorf(apath, "%q must not contain whitespace or control characters", a)
		case hasSlash && isProvider:
			// Edges read "<provider id>/..." as a wildcard request for that provider.
			v.errorf(apath, "%q must not start with %q: names of that form address provider %q directly", a, provider+"/", provider)
		case v.modelNames[a] != "":
			v.errorf(apath, "%q is already the name of %s", a, v.modelNames[a])
		case v.aliasPaths[a] != "":
			v.errorf(apath, "%q is already an alias, %s", a, v.aliasPaths[a])
		default:
			v.aliasPaths[a] = apath
		}
	}
}

func (v *validator) fallbacks(i int, m *berryv1.Model) {
	path := tablePath("models", i, m.GetId()) + ".fallbacks."
	for _, class := range sortedKeys(m.GetFallbacks()) {
		fpath := path + tomlKey(class)
		target := m.GetFallbacks()[class]
		if !slices.Contains(FallbackClasses, class) {
			v.errorf(fpath, "unknown error class %q (known: %s)", class, strings.Join(FallbackClasses, ", "))
		}
		switch _, known := v.models[target]; {
		case target == "":
			v.errorf(fpath, "must name a model id")
		case target == m.GetId():
			v.errorf(fpath, "must not be the model itself")
		case !known:
			v.errorf(fpath, "unknown model id %q%s", target, v.nameHint(target, "fallbacks name model ids"))
		}
	}
}

// fallbackCycles refuses loops in the fallback graph, whatever the classes: an edge
// following them would retry a failing request forever. A depth-first walk, in
// config order and in each model's class order, reports every loop it closes at the
// model where the loop starts, under the class that leaves that model.
func (v *validator) fallbackCycles(models []*berryv1.Model) {
	const (
		unvisited = iota
		onStack
		done
	)
	state := map[string]int{}
	type step struct{ id, class string }
	var stack []step
	var visit func(id string)
	visit = func(id string) {
		state[id] = onStack
		m := v.models[id]
		for _, class := range v.fallbackOrder(m) {
			next := m.GetFallbacks()[class]
			if _, known := v.models[next]; !known || next == id {
				continue // reported by fallbacks
			}
			stack = append(stack, step{id, class})
			switch state[next] {
			case unvisited:
				visit(next)
			case onStack:
				start := slices.IndexFunc(stack, func(s step) bool { return s.id == next })
				ids := make([]string, 0, len(stack)-start+1)
				for _, s := range stack[start:] {
					ids = append(ids, s.id)
				}
				ids = append(ids, next)
				v.errorf(tablePath("models", 0, next)+".fallbacks."+tomlKey(stack[start].class),
					"fallback cycle %s", strings.Join(ids, " → "))
			}
			stack = stack[:len(stack)-1]
		}
		state[id] = done
	}
	for _, m := range models {
		if v.models[m.GetId()] == m && state[m.GetId()] == unvisited {
			visit(m.GetId())
		}
	}
}

// fallbackOrder is the order in which cycle detection follows a model's fallbacks:
// the known classes in the edge's order, then any unknown ones sorted, so that the
// cycle reported does not depend on map iteration.
func (v *validator) fallbackOrder(m *berryv1.Model) []string {
	var order []string
	for _, c := range FallbackClasses {
		if _, ok := m.GetFallbacks()[c]; ok {
			order = append(order, c)
		}
	}
	for _, c := range sortedKeys(m.GetFallbacks()) {
		if !slices.Contains(FallbackClasses, c) {
			order = append(order, c)
		}
	}
	return order
}

// nameHint points out a model name or alias used where a model id belongs: clients
// send names, so seed files mix the two up easily.
func (v *validator) nameHint(s, rule string) string {
	if path, ok := v.modelNames[s]; ok {
		return fmt.Sprintf(" (%s has that name; %s)", path, rule)
	}
	if path, ok := v.aliasPaths[s]; ok {
		return fmt.Sprintf(" (%s is that alias; %s)", path, rule)
	}
	return ""
}

// cleanName reports whether s has no whitespace or control characters: names that
// clients type and logs print should look like what they are.
func cleanName(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}

func (v *validator) backend(path string, b *berryv1.Backend) {
	p, known := v.providers[b.GetProvider()]
	switch {
	case b.GetProvider() == "":
		v.errorf(path+".provider", "required")
	case !known:
		v.errorf(path+".provider", "unknown provider %q", b.GetProvider())
	}
	switch {
	case b.GetModel() == "":
		v.errorf(path+".model", "required")
	case known && !slices.Contains(p.GetModels(), b.GetModel()):
		v.errorf(path+".model", "%q is not in %s.models", b.GetModel(), tablePath("providers", 0, p.GetId()))
	}
	// Weights feed a random draw: NaN or Inf would make every pick the same or none.
	switch w := b.GetWeight(); {
	case math.IsNaN(w) || math.IsInf(w, 0):
		v.errorf(path+".weight", "must be finite, got %s", strconv.FormatFloat(w, 'g', -1, 64))
	case w <= 0:
		v.errorf(path+".weight", "must be > 0, got %s", strconv.FormatFloat(w, 'g', -1, 64))
	}
	if bm := b.GetBillingMode(); bm != "" && !slices.Contains(billingModes, bm) {
		v.errorf(path+".billing_mode", "unknown billing mode %q (known: %s)", bm, strings.Join(billingModes, ", "))
	}
	if pr := b.GetPrice(); pr != nil {
		v.amount(path+".price.input_per_mtok", pr.GetInputPerMtok())
		v.amount(path+".price.output_per_mtok", pr.GetOutputPerMtok())
		v.amount(path+".price.cached_input_per_mtok", pr.GetCachedInputPerMtok())
	}
}

func (v *validator) user(i int, u *berryv1.User) {
	path := tablePath("users", i, u.GetId())
	if v.id("users", "user", i, u.GetId(), v.userIDs[u.GetId()]) {
		v.userIDs[u.GetId()] = true
	}
	switch hash := u.GetTokenSha256(); {
	case len(hash) == 0 && u.GetToken() == "":
		v.errorf(path+".token", "required")
	case len(hash) == 0:
		// Edges match Bearer tokens by hash; a clear token alone would lock the user
		// out and, once stored, leak the secret.
		v.errorf(path+".token_sha256", "required; hash the clear token with HashTokens first")
	case len(hash) != sha256.Size:
		v.errorf(path+".token_sha256", "must be %d bytes, got %d", sha256.Size, len(hash))
	case u.GetToken() != "" && !bytes.Equal(HashToken(u.GetToken()), hash):
		v.errorf(path+".token", "does not match token_sha256")
	default:
		key := [sha256.Size]byte(hash)
		if other, dup := v.userTokens[key]; dup {
			v.errorf(path+".token", "same token as %s", other)
			break
		}
		v.userTokens[key] = path
	}
	for _, id := range u.GetAllowedModels() {
		if _, ok := v.models[id]; ok {
			continue
		}
		v.errorf(path+".allowed_models", "unknown model id %q%s", id, v.nameHint(id, "allowed_models lists ids"))
	}
	// The seed format holds 64-bit signed integers: a larger limit would make the
	// config impossible to export. It is as good as unlimited anyway.
	for _, l := range []struct {
		name string
		n    uint64
	}{{"tokens_per_minute", u.GetRateLimit().GetTokensPerMinute()}, {"tokens_per_day", u.GetRateLimit().GetTokensPerDay()}} {
		if l.n > math.MaxInt64 {
			v.errorf(path+".rate_limit."+l.name, "must be at most %d, got %d", int64(math.MaxInt64), l.n)
		}
	}
	if b := u.GetBudget(); b != nil {
		v.amount(path+".budget.usd_per_day", b.GetUsdPerDay())
		v.amount(path+".budget.usd_per_month", b.GetUsdPerMonth())
	}
}

// validHeaderName reports whether name is an RFC 9110 token, the only form a field
// name may take; anything else would be refused by net/http at request time instead.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
