package config

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// ExportTOML writes cfg in the seed format, laid out like a hand-written seed file, so
// that ParseTOML gives the same config back. User tokens are written as token_sha256:
// the clear token is not kept, and a clear token still present is hashed rather than
// written out. Provider api_keys are written as they are; Redact first to drop them.
//
// The config is not validated (exporting a broken config to fix it by hand is
// legitimate); only what TOML cannot represent is an error.
func ExportTOML(cfg *berryv1.Config) ([]byte, error) {
	w := &tomlWriter{}
	st := cfg.GetSettings()
	w.table("settings")
	w.int("health_check_interval_seconds", int64(st.GetHealthCheckIntervalSeconds()))
	w.int("request_timeout_seconds", int64(st.GetRequestTimeoutSeconds()))
	w.int("max_retries", int64(st.GetMaxRetries()))
	w.int("circuit_breaker_failure_threshold", int64(st.GetCircuitBreakerFailureThreshold()))
	w.int("circuit_breaker_timeout_seconds", int64(st.GetCircuitBreakerTimeoutSeconds()))
	w.int("recovery_check_interval_seconds", int64(st.GetRecoveryCheckIntervalSeconds()))
	w.uint("max_request_body_bytes", st.GetMaxRequestBodyBytes())
	if st.GetQuotaWhenDisconnected() != "" {
		w.str("quota_when_disconnected", st.GetQuotaWhenDisconnected())
	}
	if st.GetUsageRetentionDays() != 0 {
		w.int("usage_retention_days", int64(st.GetUsageRetentionDays()))
	}

	seen := map[string]bool{}
	for _, p := range cfg.GetProviders() {
		w.unique(seen, "providers", p.GetId())
		w.table("providers." + tomlKey(p.GetId()))
		w.str("name", p.GetName())
		w.str("base_url", p.GetBaseUrl())
		w.str("api_key", p.GetApiKey())
		w.strs("models", p.GetModels())
		w.bool("enabled", p.GetEnabled())
		w.int("timeout_seconds", int64(p.GetTimeoutSeconds()))
		w.int("max_retries", int64(p.GetMaxRetries()))
		if len(p.GetHeaders()) > 0 {
			w.inlineTable("headers", p.GetHeaders())
		}
		w.str("backend_type", p.GetBackendType())
		if p.GetApiVersion() != "" {
			w.str("api_version", p.GetApiVersion())
		}
		if p.GetResponsesApi() != "" {
			w.str("responses_api", p.GetResponsesApi())
		}
		if p.GetStreamUsage() != "" {
			w.str("stream_usage", p.GetStreamUsage())
		}
	}

	for _, m := range cfg.GetModels() {
		w.unique(seen, "models", m.GetId())
		table := "models." + tomlKey(m.GetId())
		w.table(table)
		w.str("name", m.GetName())
		w.str("strategy", m.GetStrategy())
		w.bool("enabled", m.GetEnabled())
		if len(m.GetAliases()) > 0 {
			w.strs("aliases", m.GetAliases())
		}
		if m.GetWildcard() != "" {
			w.str("wildcard", m.GetWildcard())
		}
		if len(m.GetFallbacks()) > 0 {
			w.inlineTable("fallbacks", m.GetFallbacks())
		}
		if m.GetAffinity() != "" {
			w.str("affinity", m.GetAffinity())
		}
		for _, b := range m.GetBackends() {
			w.buf.WriteString("\n[[" + table + ".backends]]\n")
			w.str("provider", b.GetProvider())
			w.str("model", b.GetModel())
			w.float("weight", b.GetWeight())
			w.int("priority", int64(b.GetPriority()))
			w.bool("enabled", b.GetEnabled())
			if len(b.GetTags()) > 0 {
				w.strs("tags", b.GetTags())
			}
			w.str("billing_mode", b.GetBillingMode())
			if pr := b.GetPrice(); pr != nil {
				// Both main prices even when 0: "price = {}" would read back as no price.
				fields := []string{"input_per_mtok = " + tomlFloat(pr.GetInputPerMtok()), "output_per_mtok = " + tomlFloat(pr.GetOutputPerMtok())}
				if c := pr.GetCachedInputPerMtok(); c != 0 {
					fields = append(fields, "cached_input_per_mtok = "+tomlFloat(c))
				}
				w.inline("price", fields)
			}
		}
	}

	for _, u := range cfg.GetUsers() {
		w.unique(seen, "users", u.GetId())
		w.table("users." + tomlKey(u.GetId()))
		w.str("name", u.GetName())
		hash := u.GetTokenSha256()
		if len(hash) == 0 && u.GetToken() != "" {
			hash = HashToken(u.GetToken())
		}
		if len(hash) > 0 {
			w.str("token_sha256", hex.EncodeToString(hash))
		}
		if len(u.GetAllowedModels()) > 0 {
			w.strs("allowed_models", u.GetAllowedModels())
		}
		w.bool("enabled", u.GetEnabled())
		if len(u.GetTags()) > 0 {
			w.strs("tags", u.GetTags())
		}
		if u.GetExpiresAt() != nil {
			w.key("expires_at")
			w.buf.WriteString(u.GetExpiresAt().AsTime().UTC().Format(time.RFC3339Nano) + "\n")
		}
		if rl := u.GetRateLimit(); rl != nil {
			fields := []string{
				fmt.Sprintf("requests_per_minute = %d", rl.GetRequestsPerMinute()),
				fmt.Sprintf("requests_per_hour = %d", rl.GetRequestsPerHour()),
				fmt.Sprintf("requests_per_day = %d", rl.GetRequestsPerDay()),
			}
			// Token limits only when set, so that request-only limits export as before.
			if n := rl.GetTokensPerMinute(); n != 0 {
				fields = append(fields, w.uintField("tokens_per_minute", n))
			}
			if n := rl.GetTokensPerDay(); n != 0 {
				fields = append(fields, w.uintField("tokens_per_day", n))
			}
			w.inline("rate_limit", fields)
		}
		if b := u.GetBudget(); b != nil {
			w.inline("budget", []string{"usd_per_day = " + tomlFloat(b.GetUsdPerDay()), "usd_per_month = " + tomlFloat(b.GetUsdPerMonth())})
		}
	}
	if w.err != nil {
		return nil, fmt.Errorf("export config: %w", w.err)
	}
	return w.buf.Bytes(), nil
}

// tomlWriter keeps the first error so the layout code above can read straight through.
type tomlWriter struct {
	buf bytes.Buffer
	err error
}

func (w *tomlWriter) table(name string) {
	if w.buf.Len() > 0 {
		w.buf.WriteByte('\n')
	}
	w.buf.WriteString("[" + name + "]\n")
}

// unique refuses duplicate ids: TOML cannot hold two tables with one key, and
// writing one would produce a file that does not parse.
func (w *tomlWriter) unique(seen map[string]bool, section, id string) {
	path := section + "." + tomlKey(id)
	if seen[path] && w.err == nil {
		w.err = fmt.Errorf("%s: duplicate %s id", path, section)
	}
	seen[path] = true
}

func (w *tomlWriter) key(k string) { w.buf.WriteString(k + " = ") }

func (w *tomlWriter) str(k, v string) {
	w.key(k)
	w.quote(v)
	w.buf.WriteByte('\n')
}

func (w *tomlWriter) strs(k string, vs []string) {
	w.key(k)
	w.buf.WriteByte('[')
	for i, v := range vs {
		if i > 0 {
			w.buf.WriteString(", ")
		}
		w.quote(v)
	}
	w.buf.WriteString("]\n")
}

// inlineTable writes a string map on one line, keys sorted so that equal configs
// export alike.
func (w *tomlWriter) inlineTable(k string, m map[string]string) {
	w.key(k)
	w.buf.WriteString("{ ")
	for i, name := range sortedKeys(m) {
		if i > 0 {
			w.buf.WriteString(", ")
		}
		if !utf8.ValidString(name) && w.err == nil {
			w.err = fmt.Errorf("%s key %q is not valid UTF-8", k, name)
		}
		w.buf.WriteString(tomlKey(name))
		w.buf.WriteString(" = ")
		w.quote(m[name])
	}
	w.buf.WriteString(" }\n")
}

func (w *tomlWriter) bool(k string, v bool) {
	w.buf.WriteString(k + " = " + strconv.FormatBool(v) + "\n")
}

func (w *tomlWriter) int(k string, v int64) {
	w.buf.WriteString(k + " = " + strconv.FormatInt(v, 10) + "\n")
}

func (w *tomlWriter) uint(k string, v uint64) {
	w.buf.WriteString(w.uintField(k, v) + "\n")
}

// uintField is "k = v", for a line or an inline table.
func (w *tomlWriter) uintField(k string, v uint64) string {
	// TOML integers are 64-bit signed; a larger value would not parse back.
	if v > math.MaxInt64 && w.err == nil {
		w.err = fmt.Errorf("%s = %d does not fit a TOML integer", k, v)
	}
	return k + " = " + strconv.FormatUint(v, 10)
}

// inline writes fields, each "key = value", as one inline table.
func (w *tomlWriter) inline(k string, fields []string) {
	w.buf.WriteString(k + " = { " + strings.Join(fields, ", ") + " }\n")
}

func (w *tomlWriter) float(k string, v float64) {
	w.buf.WriteString(k + " = " + tomlFloat(v) + "\n")
}

func tomlFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(v, 'g', -1, 64)
	// A bare "1" would read back as an integer; keep the float type visible.
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

func (w *tomlWriter) quote(s string) {
	if !utf8.ValidString(s) && w.err == nil {
		w.err = fmt.Errorf("string %q is not valid UTF-8", s)
	}
	w.buf.WriteString(tomlString(s))
}

// tomlString quotes s as a TOML basic string. strconv.Quote is not usable: TOML has
// no \x or \a escapes.
func tomlString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
