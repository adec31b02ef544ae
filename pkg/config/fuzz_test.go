package config

import (
	"testing"
)

// FuzzParseTOML checks that no document makes ParseTOML panic, and that whatever it
// accepts is valid and survives an export/import round trip unchanged.
func FuzzParseTOML(f *testing.F) {
	f.Add([]byte(seedTOML))
	f.Add([]byte(doc{}.String()))
	f.Add([]byte(doc{settings: "max_retries = -1", backend: "weight = nan\npriority = 99999999999"}.String()))
	f.Add([]byte(doc{provider: `headers = { "X A" = "v\r\n" }`, user: `rate_limit = { requests_per_day = -1 }`}.String()))
	f.Add([]byte(doc{
		provider: `responses_api = "native"`,
		model:    "aliases = [\"x\", \"p/y\"]\nwildcard = \"p/u*\"\naffinity = \"header:X-S\"\nfallbacks = { any = \"w\", timeout = \"m\" }",
		extra:    "[models.w]\nwildcard = \"p/*\"\nfallbacks = { context_window = \"m\" }",
	}.String()))
	f.Add([]byte(doc{
		settings: "quota_when_disconnected = \"closed\"\nusage_retention_days = 7",
		backend:  "price = { input_per_mtok = 0.075, output_per_mtok = -1, cached_input_per_mtok = nan }",
		user:     "rate_limit = { tokens_per_minute = 5, tokens_per_day = -1 }\nbudget = { usd_per_day = inf, usd_per_month = 0 }",
		extra:    "[[models.m.backends]]\nprovider = \"p\"\nmodel = \"up\"\n[models.m.backends.price]\ninput_per_mtok = 1e300",
	}.String()))
	f.Add([]byte("providers = 1\n[users.\"\"]\ntoken_sha256 = \"zz\"\n"))
	f.Add([]byte("[settings\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg, _, err := ParseTOML(in)
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned along with an error")
			}
			return
		}
		if err := Validate(cfg); err != nil {
			t.Fatalf("ParseTOML accepted a config Validate refuses: %v", err)
		}
		out, err := ExportTOML(cfg)
		if err != nil {
			t.Fatalf("export of an accepted config: %v", err)
		}
		back, _, err := ParseTOML(out)
		if err != nil {
			t.Fatalf("re-import: %v\n%s", err, out)
		}
		wantProto(t, back, cfg)
		_ = Redact(cfg)
	})
}
