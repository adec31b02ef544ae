package config

import (
	"strings"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/protobuf/proto"
)

// Redacted replaces the value of a header that looks like it carries a credential.
const Redacted = "REDACTED"

// Redact returns a copy of cfg that is safe to show to operators: provider api_keys
// and user tokens (clear and hashed) are removed, and so are header values that look
// like credentials. api_key_set records that a key exists, so a UI can say so without
// showing it. cfg itself is not modified.
func Redact(cfg *berryv1.Config) *berryv1.Config {
	if cfg == nil {
		return nil
	}
	out := proto.Clone(cfg).(*berryv1.Config)
	for _, p := range out.GetProviders() {
		if p.ApiKey != "" {
			p.ApiKeySet = true
		}
		p.ApiKey = ""
		for name := range p.Headers {
			if secretHeader(name) {
				p.Headers[name] = Redacted
			}
		}
	}
	for _, u := range out.GetUsers() {
		u.Token = ""
		// The hash is not the token, but it is what edges authenticate against, and an
		// unsalted hash of a weak token can be brute-forced.
		u.TokenSha256 = nil
	}
	return out
}

// secretHeader errs on the side of redacting: a header named like a credential is
// assumed to be one.
func secretHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "api-key", "x-api-key", "cookie":
		return true
	}
	return strings.Contains(n, "key") || strings.Contains(n, "token") ||
		strings.Contains(n, "secret") || strings.Contains(n, "auth")
}
