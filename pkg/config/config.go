// Package config converts between the seed TOML format operators write and the
// normalized berryv1.Config the control plane stores and edges receive, and decides
// whether a config is acceptable. Both sides of the system call Validate, so a config
// the control plane accepted is never refused by an edge for a rule it did not know.
package config

import (
	"crypto/sha256"
	"errors"
	"strings"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
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

// Backend types an edge may know how to talk to. "claude" is the seed format's name
// and "anthropic" Berry's; both are kept as given.
var backendTypes = []string{"openai", "azure", "claude", "anthropic", "gemini"}

var billingModes = []string{"per_token", "per_request"}

const (
	defaultBackendType = "openai"
	defaultBillingMode = "per_token"
	defaultAzureAPI    = "2024-10-21"
)
