package proxy

import (
	"strings"
	"testing"

	"github.com/berry-gateway/berry/edge/internal/routing"
)

func TestResponseIDRoundTrip(t *testing.T) {
	p := &routing.Provider{ID: "openai-primary"}
	p.Account.APIKey = "sk-secret"
	other := &routing.Provider{ID: "openai-primary"}
	other.Account.APIKey = "sk-rotated"
	for _, id := range []responseID{
		{model: "gpt_4", provider: "openai-primary", upstream: "resp_67cb71b351908190a308f3859487620d06981a8637e6bc44"},
		{model: "m", provider: "p", upstream: "x", translated: true},
		{model: strings.Repeat("m", 300), provider: "p/with/slashes", upstream: "üñí\x00"},
	} {
		s := string(appendResponseID(nil, id, p))
		if !strings.HasPrefix(s, responseIDPrefix) || strings.ContainsAny(s, "/+=") {
			t.Fatalf("id %q is not a URL-safe resp_ id", s)
		}
		got, mac, signed, err := parseResponseID(s)
		if err != nil || got != id {
			t.Fatalf("parsed %+v, %v; want %+v", got, err, id)
		}
		if !verifyResponseID(mac, signed, p) {
			t.Fatal("the id does not verify with its provider's key")
		}
		if verifyResponseID(mac, signed, other) {
			t.Fatal("the id verifies with another credential")
		}
	}
}

func FuzzParseResponseID(f *testing.F) {
	p := &routing.Provider{ID: "p"}
	f.Add(string(appendResponseID(nil, responseID{model: "m", provider: "p", upstream: "resp_1"}, p)))
	f.Add("resp_")
	f.Add("resp_AQA")
	f.Add("resp_AQD_____")
	f.Fuzz(func(t *testing.T, s string) {
		id, mac, signed, err := parseResponseID(s)
		if err != nil {
			return
		}
		if id.model == "" || id.provider == "" || id.upstream == "" || len(mac) != responseIDMACSize || len(signed) == 0 {
			t.Fatalf("accepted %q as %+v", s, id)
		}
		// A decoded id re-encodes to one that decodes to the same fields.
		again, _, _, err := parseResponseID(string(appendResponseID(nil, id, p)))
		if err != nil || again != id {
			t.Fatalf("%+v re-encoded decodes to %+v, %v", id, again, err)
		}
	})
}

func TestAppendReplaced(t *testing.T) {
	for _, tt := range []struct{ b, old, repl, want string }{
		{`{"id":"resp_1","x":"resp_1"}`, `"resp_1"`, `"resp_G"`, `{"id":"resp_G","x":"resp_G"}`},
		{`{"id":"resp_12"}`, `"resp_1"`, `"resp_G"`, `{"id":"resp_12"}`},
		{`{}`, ``, `"x"`, `{}`},
	} {
		if got := string(appendReplaced([]byte("data: "), []byte(tt.b), []byte(tt.old), []byte(tt.repl))); got != "data: "+tt.want {
			t.Errorf("appendReplaced(%s) = %s", tt.b, got)
		}
	}
}
