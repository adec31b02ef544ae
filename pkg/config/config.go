// Package config converts between the seed TOML format operators write and the
// normalized berryv1.Config the control plane stores and edges receive, and decides
// whether a config is acceptable. Both sides of the system call Validate, so a config
// the control plane accepted is never refused by an edge for a rule it did not know.
package config

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"maps"
	"slices"
	"strings"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/provider"
	"google.golang.org/protobuf/proto"
)

// ErrInvalid is wrapped by every error that means "this config is wrong", as opposed
// to an I/O or internal failure, so callers can map it to InvalidArgument.
var ErrInvalid = errors.New("invalid config")

// FieldError is one problem, located in seed-format terms
// (e.g. "models.gpt_4.backends[1].weight") so operators can find it in their file.
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) String() string { return e.Path + ": " + e.Msg }

// ValidationError lists every problem found, not just the first: fixing a config one
// error per round trip is painful.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalid.Error())
	b.WriteString(":")
	for _, fe := range e.Errors {
		b.WriteString("\n")
		b.WriteString(fe.String())
	}
	return b.String()
}

// OneLine puts a message of several lines on one: ValidationError's
// "invalid config:\na: x\nb: y" becomes "invalid config: a: x; b: y", for CLI errors,
// table rows, log lines and gRPC statuses.
func OneLine(msg string) string {
	if !strings.Contains(msg, "\n") {
		return msg
	}
	var b strings.Builder
	for l := range strings.SplitSeq(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		switch {
		case b.Len() == 0:
		case strings.HasSuffix(b.String(), ":"):
			b.WriteString(" ")
		default:
			b.WriteString("; ")
		}
		b.WriteString(l)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// HashToken returns the SHA-256 of a user token: the only form of it that is stored.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// HashTokens replaces every user's clear token with its hash, so the clear token never
// reaches storage or edges. Users without a clear token keep their hash.
func HashTokens(cfg *berryv1.Config) {
	for _, u := range cfg.GetUsers() {
		if u.GetToken() != "" {
			u.TokenSha256 = HashToken(u.GetToken())
			u.Token = ""
		}
	}
}

var billingModes = []string{"per_token", "per_request"}

// QuotaWhenDisconnected values: what an edge does with a key's fleet limits once it
// has lost the control plane and its last grant has run out. "" means QuotaShare.
const (
	// QuotaShare divides each limit by the last known number of edges.
	QuotaShare = "share"
	// QuotaOpen admits requests.
	QuotaOpen = "open"
	// QuotaClosed refuses requests.
	QuotaClosed = "closed"
)

var quotaModes = []string{QuotaShare, QuotaOpen, QuotaClosed}

// responsesAPIModes are the values of a provider's responses_api; "" means the kind's
// default, decided by its adapter.
var responsesAPIModes = []string{"native", "chat"}

// noNativeResponses are the backend types whose upstream has no Responses API, so
// "native" would send requests to an endpoint that does not exist.
var noNativeResponses = []string{"anthropic", "claude"}

// FallbackClasses are the error classes a model's fallbacks may name, in the order an edge checks them.
var FallbackClasses = []string{"context_window", "content_filter", "any"}

// ParseWildcard splits a model's wildcard pattern into the provider id and the upstream-model prefix; ok is false for "".
// It is also false for a pattern not of the form "<provider id>/<prefix>*" with a
// single "*", which Validate refuses, so an edge never routes by a half-understood
// pattern.
func ParseWildcard(pattern string) (providerID, prefix string, ok bool) {
	providerID, rest, found := strings.Cut(pattern, "/")
	if !found || providerID == "" {
		return "", "", false
	}
	prefix, found = strings.CutSuffix(rest, "*")
	if !found || strings.Contains(prefix, "*") {
		return "", "", false
	}
	return providerID, prefix, true
}

// ParseAffinity splits an affinity setting: kind is "", "user" or "header", header is the lower-cased header name.
// A setting Validate refuses gives kind "", i.e. no affinity.
func ParseAffinity(s string) (kind, header string) {
	if s == "user" {
		return "user", ""
	}
	if name, ok := strings.CutPrefix(s, affinityHeaderPrefix); ok {
		return "header", asciiLower(name)
	}
	return "", ""
}

const affinityHeaderPrefix = "header:"

// normalizeAffinity lower-cases the header name of a "header:<name>" affinity, the
// form stored so that edges need not fold case on every request.
func normalizeAffinity(s string) string {
	if name, ok := strings.CutPrefix(s, affinityHeaderPrefix); ok {
		return affinityHeaderPrefix + asciiLower(name)
	}
	return s
}

// asciiLower folds only ASCII letters: strings.ToLower would turn the Kelvin sign into
// "k" and so make a name Validate must refuse look like a valid header name.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// Defaults of the seed format, applied where a key is absent (and, for the proto form,
// where a field that must be positive is zero). They are the only definition: the
// edge's breaker, probes and timeouts use these when a setting is unset.
const (
	DefaultHealthCheckIntervalSeconds     = 30
	DefaultRequestTimeoutSeconds          = 30
	DefaultMaxRetries                     = 3
	DefaultCircuitBreakerFailureThreshold = 5
	DefaultCircuitBreakerTimeoutSeconds   = 60
	DefaultRecoveryCheckIntervalSeconds   = 120
	DefaultBillingMode                    = "per_token"
)

// DefaultUsageRetentionDays is how long the ledger keeps usage when the settings leave it unset.
const DefaultUsageRetentionDays = 90

// BackendKey identifies a backend across config versions and across the fleet: the
// provider's id and the upstream model. The edge keys a backend's runtime state by
// it, edges report observations under it and the control plane merges them by it.
type BackendKey struct {
	Provider, Model string
}

// String is "provider/model", the backend's label in metrics and logs.
func (k BackendKey) String() string { return k.Provider + "/" + k.Model }

// providerDefaults fills what a provider's kind implies when its config leaves it
// out: the kind itself and the kind's API version. Both import paths (TOML and the
// proto form) call it, so stored configs look alike whatever their source.
func providerDefaults(p *berryv1.Provider) {
	p.BackendType = cmp.Or(p.BackendType, provider.DefaultKind)
	p.ApiVersion = cmp.Or(p.ApiVersion, provider.DefaultAPIVersion(p.BackendType))
}

// ContentHash identifies a config's content: the SHA-256 of its deterministic
// encoding. Snapshots carry it, so that a version number that came back with other
// content is not mistaken for the one an edge holds.
func ContentHash(cfg *berryv1.Config) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cfg)
	if err != nil {
		return nil // only a config too large to encode; edges then compare versions alone
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// Account is a provider as its adapter sees it, before Prepare: headers in a fixed
// (sorted) order so that what goes upstream does not vary between snapshots.
func Account(p *berryv1.Provider) provider.Account {
	a := provider.Account{
		ID: p.GetId(), Kind: p.GetBackendType(), BaseURL: p.GetBaseUrl(),
		APIKey: p.GetApiKey(), APIVersion: p.GetApiVersion(),
	}
	for _, k := range slices.Sorted(maps.Keys(p.GetHeaders())) {
		a.Headers = append(a.Headers, [2]string{k, p.GetHeaders()[k]})
	}
	return a
}
