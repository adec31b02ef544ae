package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// Valid must accept exactly what encoding/json.Valid accepts: a body the gateway
// forwards is one that a Go upstream can decode, and a malformed one never leaves.
func TestValidAgreesWithEncodingJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, s := range []string{
		``, ` `, `{}`, ` {} `, `[]`, `[1,2]`, `[1,]`, `[,1]`, `{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{"a":}`, `{1:2}`,
		`"x"`, `"x`, `"\"`, `"\u00e9"`, `"\u00g9"`, `"\u00e"`, `"\x"`, `"\/"`, "\"a\tb\"", "\"a\x7fb\"",
		"\"\xff\xfe\"", `"\ud800"`, `true`, `tru`, `truex`, `false`, `null`, `nul`, `nulll`,
		`0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e`, `1e+`, `1e+5`, `1E-05`, `-1.5e3`, `1.5e3.2`, `+1`, `0x10`,
		`{"a":[1,{"b":null}],"c":"d"}`, `{"a":1}{"b":2}`, `{"a":1} x`, "{\"a\":1}\n\t\r ", `{"a":"1234567890abcdef\"ghij"}`,
		`{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("xyz ", 300) + `"}]}`,
		`{"k":"` + strings.Repeat("a", 17) + "\x01" + `"}`, `{"k":"` + strings.Repeat("\\\\", 9) + `"}`,
		deep(maxDepth), deep(maxDepth + 1), `{"a":` + deep(maxDepth-1) + `}`, `{"a":` + deep(maxDepth) + `}`,
	} {
		if got, want := Valid([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("Valid(%.60q) = %v, encoding/json says %v", s, got, want)
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"model":"m","stream":true}`, `[1,"a\u0041",{"b":[null,false]}]`, `"\t"`, `-0.5e-7`, `{"a":"bcdefghijklmnop\\q"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", b, got, want)
		}
		var fields Fields
		if err := Scan(b, &fields); err == nil && !json.Valid(b) {
			t.Fatalf("Scan accepted %q, which is not valid JSON", b)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	body := []byte(`{"model":"bench","stream":false,"messages":[{"role":"user","content":"` + strings.Repeat("x", 960) + `"}],"temperature":0.7}`)
	b.Run("jsonscan", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			Valid(body)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			json.Valid(body)
		}
	})
}

// Scan, which validates the body as it finds the routing fields, allocates nothing
// for a plain body (the edge scans every request body).
func TestScanAllocs(t *testing.T) {
	body := []byte(`{"model":"bench","stream":true,"user":"u1","max_tokens":256,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"` + strings.Repeat("x", 960) + `"}],"temperature":0.7}`)
	var f Fields
	if n := testing.AllocsPerRun(100, func() {
		if err := Scan(body, &f); err != nil || !Valid(body) {
			t.Fatal("the body is valid")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per Scan, want 0", n)
	}
}
