package config

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

func TestRedact(t *testing.T) {
	const (
		apiKey = "sk-very-secret"
		token  = "berry-user-token"
	)
	hash := HashToken(token)
	secretHeaders := map[string]string{
		"Authorization":   "Bearer h1",
		"api-key":         "h2",
		"X-API-KEY":       "h3",
		"X-Goog-Api-Key":  "h4",
		"X-Session-Token": "h5",
		"Client-Secret":   "h6",
	}
	tests := []struct {
		name        string
		cfg         *berryv1.Config
		wantKeySet  []bool   // per provider
		wantHeaders []string // header values kept as is, in name order, of the first provider
	}{
		{"seed", seedConfig(), []bool{true, true}, nil},
		{"everything secret", &berryv1.Config{
			Providers: []*berryv1.Provider{
				{Id: "p", ApiKey: apiKey, Headers: secretHeaders},
				{Id: "q"},
				{Id: "r", ApiKeySet: true}, // already redacted once
			},
			Users: []*berryv1.User{
				{Id: "u", Token: token, TokenSha256: hash},
				{Id: "v", TokenSha256: hash},
			},
		}, []bool{true, false, true}, nil},
		{"harmless headers kept", &berryv1.Config{
			Providers: []*berryv1.Provider{{Id: "p", Headers: map[string]string{"X-Extra": "v", "OpenAI-Organization": "org"}}},
		}, []bool{false}, []string{"org", "v"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := proto.Clone(tt.cfg)
			out := Redact(tt.cfg)
			if !proto.Equal(tt.cfg, before) {
				t.Fatal("Redact modified its input")
			}
			text := prototext.Format(out)
			wire, err := proto.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			secrets := []string{apiKey, token, string(hash), hex.EncodeToString(hash), "sk-primary-secret",
				"azure-secret", "berry-alice-token", string(HashToken("berry-alice-token"))}
			for _, v := range secretHeaders {
				secrets = append(secrets, v)
			}
			for _, s := range secrets {
				if strings.Contains(text, s) || bytes.Contains(wire, []byte(s)) {
					t.Errorf("secret %q left in redacted config:\n%s", s, text)
				}
			}
			for i, p := range out.GetProviders() {
				if p.GetApiKey() != "" {
					t.Errorf("providers.%s.api_key not cleared", p.GetId())
				}
				if p.GetApiKeySet() != tt.wantKeySet[i] {
					t.Errorf("providers.%s.api_key_set = %v, want %v", p.GetId(), p.GetApiKeySet(), tt.wantKeySet[i])
				}
				for name, v := range p.GetHeaders() {
					if secretHeader(name) && v != Redacted {
						t.Errorf("providers.%s.headers.%s = %q, want %q", p.GetId(), name, v, Redacted)
					}
				}
			}
			for _, u := range out.GetUsers() {
				if u.GetToken() != "" || len(u.GetTokenSha256()) != 0 {
					t.Errorf("users.%s keeps token material", u.GetId())
				}
			}
			if tt.wantHeaders != nil {
				h := out.GetProviders()[0].GetHeaders()
				var got []string
				for _, k := range sortedKeys(h) {
					got = append(got, h[k])
				}
				wantLines(t, got, tt.wantHeaders)
			}
		})
	}
	if Redact(nil) != nil {
		t.Error("Redact(nil) != nil")
	}
}

// Prices, budgets, token limits and the quota settings are no secrets: operators
// reading the config must see them as they are.
func TestRedactKeepsPricesAndLimits(t *testing.T) {
	out := Redact(seedConfig())
	want := seedConfig()
	for _, p := range want.Providers {
		p.ApiKey, p.ApiKeySet = "", true
	}
	for _, u := range want.Users {
		u.TokenSha256 = nil
	}
	wantProto(t, out, want)
}
