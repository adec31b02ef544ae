package config

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/balancer"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The raw* types mirror the seed file. Integers are int64 whatever the proto type so
// that a negative or oversized number reaches us and becomes a FieldError naming the
// key, instead of a decoder error or a silent wrap. Pointers mark the fields whose
// default applies only when the key is absent.
type rawDoc struct {
	Settings  rawSettings            `toml:"settings"`
	Providers map[string]rawProvider `toml:"providers"`
	Models    map[string]rawModel    `toml:"models"`
	Users     map[string]rawUser     `toml:"users"`
}

type rawSettings struct {
	HealthCheckIntervalSeconds     *int64 `toml:"health_check_interval_seconds"`
	RequestTimeoutSeconds          *int64 `toml:"request_timeout_seconds"`
	MaxRetries                     *int64 `toml:"max_retries"`
	CircuitBreakerFailureThreshold *int64 `toml:"circuit_breaker_failure_threshold"`
	CircuitBreakerTimeoutSeconds   *int64 `toml:"circuit_breaker_timeout_seconds"`
	RecoveryCheckIntervalSeconds   *int64 `toml:"recovery_check_interval_seconds"`
	MaxRequestBodyBytes            int64  `toml:"max_request_body_bytes"`
	QuotaWhenDisconnected          string `toml:"quota_when_disconnected"`
	UsageRetentionDays             int64  `toml:"usage_retention_days"`
}

type rawProvider struct {
	Name           string            `toml:"name"`
	BaseURL        string            `toml:"base_url"`
	APIKey         string            `toml:"api_key"`
	Models         []string          `toml:"models"`
	Enabled        *bool             `toml:"enabled"`
	TimeoutSeconds *int64            `toml:"timeout_seconds"`
	MaxRetries     *int64            `toml:"max_retries"`
	Headers        map[string]string `toml:"headers"`
	BackendType    string            `toml:"backend_type"`
	APIVersion     string            `toml:"api_version"`
	ResponsesAPI   string            `toml:"responses_api"`
	StreamUsage    string            `toml:"stream_usage"`
}

type rawModel struct {
	Name      *string           `toml:"name"`
	Strategy  string            `toml:"strategy"`
	Enabled   *bool             `toml:"enabled"`
	Backends  []rawBackend      `toml:"backends"`
	Aliases   []string          `toml:"aliases"`
	Wildcard  string            `toml:"wildcard"`
	Fallbacks map[string]string `toml:"fallbacks"`
	Affinity  string            `toml:"affinity"`
}

type rawBackend struct {
	Provider    string    `toml:"provider"`
	Model       string    `toml:"model"`
	Weight      *float64  `toml:"weight"`
	Priority    int64     `toml:"priority"`
	Enabled     *bool     `toml:"enabled"`
	Tags        []string  `toml:"tags"`
	BillingMode string    `toml:"billing_mode"`
	Price       *rawPrice `toml:"price"`
}

// rawPrice and rawBudget are floats in the proto too; Validate refuses negative and
// non-finite values. A value of another type is a decoder error naming the key.
type rawPrice struct {
	InputPerMtok       float64 `toml:"input_per_mtok"`
	OutputPerMtok      float64 `toml:"output_per_mtok"`
	CachedInputPerMtok float64 `toml:"cached_input_per_mtok"`
}

type rawBudget struct {
	UsdPerDay   float64 `toml:"usd_per_day"`
	UsdPerMonth float64 `toml:"usd_per_month"`
}

type rawUser struct {
	Name          string        `toml:"name"`
	Token         string        `toml:"token"`
	TokenSha256   string        `toml:"token_sha256"`
	AllowedModels []string      `toml:"allowed_models"`
	Enabled       *bool         `toml:"enabled"`
	Tags          []string      `toml:"tags"`
	RateLimit     *rawRateLimit `toml:"rate_limit"`
	// A TOML offset date-time, e.g. expires_at = 2027-01-01T00:00:00Z.
	ExpiresAt *time.Time `toml:"expires_at"`
	Budget    *rawBudget `toml:"budget"`
}

type rawRateLimit struct {
	RequestsPerMinute int64 `toml:"requests_per_minute"`
	RequestsPerHour   int64 `toml:"requests_per_hour"`
	RequestsPerDay    int64 `toml:"requests_per_day"`
	TokensPerMinute   int64 `toml:"tokens_per_minute"`
	TokensPerDay      int64 `toml:"tokens_per_day"`
}

// ParseTOML reads a seed-format document into a normalized, validated Config: ids
// from table keys, defaults filled in, lists sorted by id, user tokens hashed and the
// clear tokens dropped. Keys it does not know are returned as warnings rather than
// errors so that seed files written for other versions still import. Any error wraps
// ErrInvalid; problems with values come as a *ValidationError listing all of them.
func ParseTOML(doc []byte) (*berryv1.Config, []string, error) {
	var raw rawDoc
	md, err := toml.Decode(string(doc), &raw)
	if err != nil {
		// toml's errors already carry the line and the key; keep them reachable with
		// errors.As for callers that want the position.
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if errs := append(nonTableMaps(md), caseMismatches(md)...); len(errs) > 0 {
		return nil, nil, &ValidationError{Errors: errs}
	}
	warnings := unknownKeys(md)

	var p parser
	cfg := p.build(&raw)
	HashTokens(cfg)
	if err := Validate(cfg); err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			return nil, warnings, err
		}
		p.merge(ve.Errors)
	}
	if len(p.errs) > 0 {
		return nil, warnings, &ValidationError{Errors: p.errs}
	}
	return cfg, warnings, nil
}

// nonTableMaps finds keys that must be tables but are not. toml refuses a scalar where
// a struct or slice is expected but silently leaves a map empty, which would turn
// "providers = 1" into a config without providers.
func nonTableMaps(md toml.MetaData) []FieldError {
	var errs []FieldError
	for _, k := range md.Keys() {
		// Struct fields match case-insensitively in toml, so "Providers" counts too.
		isMap := len(k) == 1 && (strings.EqualFold(k[0], "providers") || strings.EqualFold(k[0], "models") || strings.EqualFold(k[0], "users")) ||
			len(k) == 3 && strings.EqualFold(k[0], "providers") && strings.EqualFold(k[2], "headers") ||
			len(k) == 3 && strings.EqualFold(k[0], "models") && strings.EqualFold(k[2], "fallbacks")
		if t := md.Type(k...); isMap && t != "Hash" {
			errs = append(errs, FieldError{Path: k.String(), Msg: "must be a table, got " + strings.ToLower(t)})
		}
	}
	return errs
}

// caseMismatches finds keys toml matched to a field only by ignoring case (it uses
// strings.EqualFold, so "Name" and even "ſettings" match). Two spellings of one
// field would otherwise both be decoded, in map order, so one would win at random.
func caseMismatches(md toml.MetaData) []FieldError {
	undecoded := map[string]bool{}
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	var errs []FieldError
	reported := map[string]bool{}
	for _, k := range md.Keys() {
		if undecoded[k.String()] {
			continue
		}
		for _, i := range fieldIndexes(k) {
			path := k[:i+1].String()
			if strings.Trim(k[i], "abcdefghijklmnopqrstuvwxyz0123456789_") != "" && !reported[path] {
				reported[path] = true
				errs = append(errs, FieldError{Path: path, Msg: "key names are case-sensitive and lower case"})
			}
		}
	}
	return errs
}

// fieldIndexes returns the positions in k that name a field of the seed format, as
// opposed to an id or a header name chosen by the operator.
func fieldIndexes(k toml.Key) []int {
	idx := []int{0}
	switch {
	case strings.EqualFold(k[0], "settings"):
		idx = append(idx, 1)
	case strings.EqualFold(k[0], "providers"):
		idx = append(idx, 2)
	case strings.EqualFold(k[0], "models"):
		idx = append(idx, 2)
		if len(k) > 2 && strings.EqualFold(k[2], "backends") {
			idx = append(idx, 3)
			if len(k) > 3 && strings.EqualFold(k[3], "price") {
				idx = append(idx, 4)
			}
		}
	case strings.EqualFold(k[0], "users"):
		idx = append(idx, 2)
		if len(k) > 2 && (strings.EqualFold(k[2], "rate_limit") || strings.EqualFold(k[2], "budget")) {
			idx = append(idx, 3)
		}
	}
	for len(idx) > 0 && idx[len(idx)-1] >= len(k) {
		idx = idx[:len(idx)-1]
	}
	return idx
}

// unknownKeys reports each unknown key once: for an unknown table, only the table,
// not every key inside it as well.
func unknownKeys(md toml.MetaData) []string {
	var warnings []string
	reported := map[string]bool{}
	for _, k := range md.Undecoded() {
		covered := false
		for i := 1; i < len(k); i++ {
			if reported[k[:i].String()] {
				covered = true
				break
			}
		}
		if covered {
			continue
		}
		reported[k.String()] = true
		warnings = append(warnings, fmt.Sprintf("unknown key %q ignored", k.String()))
	}
	return warnings
}

// parser collects the problems that only the raw document can show (negative numbers,
// malformed hex), which the proto form cannot represent and so Validate cannot see.
type parser struct {
	errs []FieldError
}

func (p *parser) errorf(path, format string, args ...any) {
	p.errs = append(p.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// merge appends Validate's findings, minus those on a path the parser already
// reported: a negative timeout read as 0 must not also be reported as "must be > 0".
func (p *parser) merge(errs []FieldError) {
	seen := make(map[string]bool, len(p.errs))
	for _, e := range p.errs {
		seen[e.Path] = true
	}
	for _, e := range errs {
		if !seen[e.Path] {
			p.errs = append(p.errs, e)
		}
	}
}

func (p *parser) uint(path string, v int64, max uint64) uint64 {
	switch {
	case v < 0:
		p.errorf(path, "must not be negative, got %d", v)
		return 0
	case uint64(v) > max:
		p.errorf(path, "must be at most %d, got %d", max, v)
		return 0
	}
	return uint64(v)
}

func (p *parser) uint32(path string, v int64) uint32 {
	return uint32(p.uint(path, v, math.MaxUint32))
}

func (p *parser) uint32Or(path string, v *int64, def uint32) uint32 {
	if v == nil {
		return def
	}
	return p.uint32(path, *v)
}

func (p *parser) int32(path string, v int64) int32 {
	if v < math.MinInt32 || v > math.MaxInt32 {
		p.errorf(path, "must be between %d and %d, got %d", math.MinInt32, math.MaxInt32, v)
		return 0
	}
	return int32(v)
}

func (p *parser) build(raw *rawDoc) *berryv1.Config {
	st := p.settings(&raw.Settings)
	cfg := &berryv1.Config{Settings: st}
	for i, id := range sortedKeys(raw.Providers) {
		cfg.Providers = append(cfg.Providers, p.provider(i, id, raw.Providers[id], st))
	}
	for i, id := range sortedKeys(raw.Models) {
		cfg.Models = append(cfg.Models, p.model(i, id, raw.Models[id]))
	}
	for i, id := range sortedKeys(raw.Users) {
		cfg.Users = append(cfg.Users, p.user(i, id, raw.Users[id]))
	}
	return cfg
}

func (p *parser) settings(r *rawSettings) *berryv1.Settings {
	const s = "settings."
	return &berryv1.Settings{
		HealthCheckIntervalSeconds:     p.uint32Or(s+"health_check_interval_seconds", r.HealthCheckIntervalSeconds, DefaultHealthCheckIntervalSeconds),
		RequestTimeoutSeconds:          p.uint32Or(s+"request_timeout_seconds", r.RequestTimeoutSeconds, DefaultRequestTimeoutSeconds),
		MaxRetries:                     p.uint32Or(s+"max_retries", r.MaxRetries, DefaultMaxRetries),
		CircuitBreakerFailureThreshold: p.uint32Or(s+"circuit_breaker_failure_threshold", r.CircuitBreakerFailureThreshold, DefaultCircuitBreakerFailureThreshold),
		CircuitBreakerTimeoutSeconds:   p.uint32Or(s+"circuit_breaker_timeout_seconds", r.CircuitBreakerTimeoutSeconds, DefaultCircuitBreakerTimeoutSeconds),
		RecoveryCheckIntervalSeconds:   p.uint32Or(s+"recovery_check_interval_seconds", r.RecoveryCheckIntervalSeconds, DefaultRecoveryCheckIntervalSeconds),
		MaxRequestBodyBytes:            p.uint(s+"max_request_body_bytes", r.MaxRequestBodyBytes, math.MaxUint64),
		// Left unset when absent, as the proto's 0 and "" already mean the defaults.
		QuotaWhenDisconnected: r.QuotaWhenDisconnected,
		UsageRetentionDays:    p.uint32(s+"usage_retention_days", r.UsageRetentionDays),
	}
}

func (p *parser) provider(i int, id string, r rawProvider, st *berryv1.Settings) *berryv1.Provider {
	path := tablePath("providers", i, id)
	pr := &berryv1.Provider{
		Id:             id,
		Name:           r.Name,
		BaseUrl:        r.BaseURL,
		ApiKey:         r.APIKey,
		Models:         r.Models,
		Enabled:        boolOr(r.Enabled, true),
		TimeoutSeconds: p.uint32Or(path+".timeout_seconds", r.TimeoutSeconds, st.GetRequestTimeoutSeconds()),
		MaxRetries:     p.uint32Or(path+".max_retries", r.MaxRetries, st.GetMaxRetries()),
		Headers:        r.Headers,
		BackendType:    r.BackendType,
		ApiVersion:     r.APIVersion,
		ResponsesApi:   r.ResponsesAPI,
		StreamUsage:    r.StreamUsage,
	}
	providerDefaults(pr)
	return pr
}

func (p *parser) model(i int, id string, r rawModel) *berryv1.Model {
	path := tablePath("models", i, id)
	m := &berryv1.Model{
		Id: id,
		// Clients route by name, so an explicit name = "" is left for Validate to
		// refuse instead of being quietly replaced.
		Name:      id,
		Strategy:  cmp.Or(r.Strategy, balancer.Default),
		Enabled:   boolOr(r.Enabled, true),
		Aliases:   r.Aliases,
		Wildcard:  r.Wildcard,
		Fallbacks: r.Fallbacks,
		Affinity:  normalizeAffinity(r.Affinity),
	}
	if r.Name != nil {
		m.Name = *r.Name
	}
	for i, rb := range r.Backends {
		var price *berryv1.Price
		if rp := rb.Price; rp != nil {
			price = &berryv1.Price{InputPerMtok: rp.InputPerMtok, OutputPerMtok: rp.OutputPerMtok, CachedInputPerMtok: rp.CachedInputPerMtok}
		}
		m.Backends = append(m.Backends, &berryv1.Backend{
			Provider:    rb.Provider,
			Model:       rb.Model,
			Weight:      floatOr(rb.Weight, 1),
			Priority:    p.int32(fmt.Sprintf("%s.backends[%d].priority", path, i), rb.Priority),
			Enabled:     boolOr(rb.Enabled, true),
			Tags:        rb.Tags,
			BillingMode: cmp.Or(rb.BillingMode, DefaultBillingMode),
			Price:       price,
		})
	}
	return m
}

func (p *parser) user(i int, id string, r rawUser) *berryv1.User {
	path := tablePath("users", i, id)
	u := &berryv1.User{
		Id:            id,
		Name:          r.Name,
		Token:         r.Token,
		AllowedModels: r.AllowedModels,
		Enabled:       boolOr(r.Enabled, true),
		Tags:          r.Tags,
	}
	if r.TokenSha256 != "" {
		switch h, err := hex.DecodeString(r.TokenSha256); {
		case r.Token != "":
			p.errorf(path+".token_sha256", "set either token or token_sha256, not both")
		case err != nil || len(h) != len(HashToken("")):
			p.errorf(path+".token_sha256", "must be %d hex digits", 2*len(HashToken("")))
		default:
			u.TokenSha256 = h
		}
	}
	if r.ExpiresAt != nil {
		u.ExpiresAt = timestamppb.New(*r.ExpiresAt)
	}
	if rl := r.RateLimit; rl != nil {
		u.RateLimit = &berryv1.RateLimit{
			RequestsPerMinute: p.uint32(path+".rate_limit.requests_per_minute", rl.RequestsPerMinute),
			RequestsPerHour:   p.uint32(path+".rate_limit.requests_per_hour", rl.RequestsPerHour),
			RequestsPerDay:    p.uint32(path+".rate_limit.requests_per_day", rl.RequestsPerDay),
			TokensPerMinute:   p.uint(path+".rate_limit.tokens_per_minute", rl.TokensPerMinute, math.MaxUint64),
			TokensPerDay:      p.uint(path+".rate_limit.tokens_per_day", rl.TokensPerDay, math.MaxUint64),
		}
	}
	if b := r.Budget; b != nil {
		u.Budget = &berryv1.Budget{UsdPerDay: b.UsdPerDay, UsdPerMonth: b.UsdPerMonth}
	}
	return u
}

// tablePath names an entry the way the seed file does: providers.openai-primary, or
// providers."odd key" for keys TOML has to quote. Proto-form input may have no id
// at all; then the list index is the only way to point at the entry.
func tablePath(section string, index int, id string) string {
	if id == "" {
		return section + "[" + strconv.Itoa(index) + "]"
	}
	return section + "." + tomlKey(id)
}

// tomlKey writes a key bare when TOML allows it and quoted otherwise.
func tomlKey(k string) string {
	if k != "" && strings.Trim(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == "" {
		return k
	}
	return tomlString(k)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func boolOr(v *bool, def bool) bool {
	if v == nil {
		return def
	}
	return *v
}

func floatOr(v *float64, def float64) float64 {
	if v == nil {
		return def
	}
	return *v
}
