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
	if len(m.GetBackends()) == 0 {
		v.errorf(path+".backends", "must have at least one backend")
	}
	for j, b := range m.GetBackends() {
		v.backend(fmt.Sprintf("%s.backends[%d]", path, j), b)
	}
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
		// Seed files are easy to get wrong here: clients send names, this lists ids.
		hint := ""
		if path, ok := v.modelNames[id]; ok {
			hint = fmt.Sprintf(" (%s has that name; allowed_models lists ids)", path)
		}
		v.errorf(path+".allowed_models", "unknown model id %q%s", id, hint)
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
