package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func TestScan(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		model     string
		stream    bool
		backend   string
		wantErr   bool
		rewritten string // with model "up" and backend dropped
	}{
		{name: "plain", body: `{"model":"gpt-4","messages":[]}`, model: "gpt-4",
			rewritten: `{"model":"up","messages":[]}`},
		{name: "stream true", body: `{"messages":[{"role":"user","content":"}{\""}],"stream":true,"model":"m"}`,
			model: "m", stream: true, rewritten: `{"messages":[{"role":"user","content":"}{\""}],"stream":true,"model":"up"}`},
		{name: "stream null", body: `{"model":"m","stream":null}`, model: "m", rewritten: `{"model":"up","stream":null}`},
		{name: "nested model key ignored", body: `{"x":{"model":"inner"},"model":"outer"}`, model: "outer",
			rewritten: `{"x":{"model":"inner"},"model":"up"}`},
		{name: "escaped key", body: `{"mod\u0065l":"m"}`, model: "m", rewritten: `{"mod\u0065l":"up"}`},
		{name: "escaped value", body: `{"model":"a\"b"}`, model: `a"b`, rewritten: `{"model":"up"}`},
		{name: "backend first", body: `{"backend":"p1", "model":"m"}`, model: "m", backend: "p1",
			rewritten: `{"model":"up"}`},
		{name: "backend middle", body: `{"model":"m" , "backend":"p1","n":1}`, model: "m", backend: "p1",
			rewritten: `{"model":"up" ,"n":1}`},
		{name: "backend last", body: "{\"model\":\"m\",\n \"backend\" : \"p1\"\n}", model: "m", backend: "p1",
			rewritten: "{\"model\":\"up\"\n}"},
		{name: "backend only", body: `{"backend":"p1"}`, backend: "p1", rewritten: `{}`},
		{name: "whitespace", body: " \n{ \"model\" :\t\"m\" , \"stream\" : false } ", model: "m",
			rewritten: " \n{ \"model\" :\t\"up\" , \"stream\" : false } "},
		{name: "no model", body: `{"messages":[]}`, rewritten: `{"messages":[]}`},
		{name: "malformed", body: `{"model":"m"`, wantErr: true},
		{name: "trailing garbage", body: `{"model":"m"} x`, wantErr: true},
		{name: "array", body: `["model"]`, wantErr: true},
		{name: "empty", body: ``, wantErr: true},
		{name: "model number", body: `{"model":4}`, wantErr: true},
		{name: "stream string", body: `{"model":"m","stream":"yes"}`, wantErr: true},
		{name: "backend number", body: `{"model":"m","backend":1}`, wantErr: true},
		// What the gateway routes on and what an upstream reads must be the same value.
		{name: "duplicate model", body: `{"model":"evil","model":"m"}`, wantErr: true},
		{name: "duplicate model, escaped first", body: `{"mod\u0065l":"evil","model":"m"}`, wantErr: true},
		{name: "duplicate model, escaped last", body: `{"model":"m","mod\u0065l":"evil"}`, wantErr: true},
		{name: "duplicate backend", body: `{"model":"m","backend":"a","backend":"b"}`, wantErr: true},
		{name: "duplicate stream", body: `{"model":"m","stream":false,"stream":true}`, wantErr: true},
		{name: "model in another case", body: `{"Model":"evil","model":"m"}`, wantErr: true},
		{name: "stream in another case", body: `{"model":"m","Stream":true}`, wantErr: true},
		{name: "backend in another case, escaped", body: `{"model":"m","B\u0061ckend":"p"}`, wantErr: true},
		{name: "nested duplicates are the body's own", body: `{"model":"m","x":{"model":1,"model":2,"Model":3}}`, model: "m",
			rewritten: `{"model":"up","x":{"model":1,"model":2,"Model":3}}`},
		{name: "other keys in other cases", body: `{"model":"m","Messages":[],"MODELS":1}`, model: "m",
			rewritten: `{"model":"up","Messages":[],"MODELS":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Fields
			err := Scan([]byte(tt.body), &f)
			if tt.wantErr {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("Scan error = %v, want ErrBadRequest", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			body := []byte(tt.body)
			if f.Model.Present() != (tt.model != "") || (tt.model != "" && String(body, f.Model) != tt.model) {
				t.Errorf("model = %q, want %q", String(body, f.Model), tt.model)
			}
			if f.Stream != tt.stream {
				t.Errorf("stream = %v, want %v", f.Stream, tt.stream)
			}
			if tt.backend != "" && String(body, f.Backend) != tt.backend {
				t.Errorf("backend = %q, want %q", String(body, f.Backend), tt.backend)
			}
			got := string(Rewrite(nil, body, &f, "up", true))
			if got != tt.rewritten {
				t.Errorf("Rewrite = %q, want %q", got, tt.rewritten)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("Rewrite produced invalid JSON %q", got)
			}
		})
	}
}

func FuzzScan(f *testing.F) {
	for _, s := range []string{`{"model":"gpt-4","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		`{"backend":"p","model":"m"}`, `{"a":[1,{"b":"\"}"}],"model":"x\u00e9","backend":"y"}`, `{}`, `[]`, `"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fl Fields
		if err := Scan(body, &fl); err != nil {
			return
		}
		out := Rewrite(nil, body, &fl, "new\"model", true)
		if !json.Valid(out) {
			t.Fatalf("Rewrite(%q) = %q: invalid JSON", body, out)
		}
		var m map[string]any
		if json.Unmarshal(out, &m) == nil { // duplicate keys make this ambiguous; check simple cases
			if fl.Model.Present() {
				if v, _ := m["model"].(string); v != "new\"model" {
					if countKey(body) == 1 {
						t.Fatalf("model = %q after Rewrite of %q", v, body)
					}
				}
			}
		}
	})
}

// countKey is 1 when the body has one top-level model key; duplicate keys are legal
// JSON but decoders disagree on which wins, so the fuzzer does not judge those.
func countKey(body []byte) int {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, _ := dec.Token()
	if tok != json.Delim('{') {
		return 0
	}
	n := 0
	for dec.More() {
		k, _ := dec.Token()
		var v json.RawMessage
		_ = dec.Decode(&v)
		if k == "model" {
			n++
		}
	}
	return n
}

func BenchmarkScanRewrite(b *testing.B) {
	body := []byte(`{"model":"gpt-4","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about load balancers and the quiet hum of many servers."}],"temperature":0.7,"stream":false}`)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var f Fields
		if err := Scan(body, &f); err != nil {
			b.Fatal(err)
		}
		buf = Rewrite(buf[:0], body, &f, "gpt-4-0613", true)
	}
}

// FuzzAppendString holds the hand-written string encoder to encoding/json's output
// with HTML escaping off.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\s/<>&", "\n\r\t\b\f\x00\x1f\x7f", "é€😀", "\u2028\u2029", "\xff\xfe bad", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); string(got)+"\n" != want.String() {
			t.Fatalf("AppendString(%q) = %s, encoding/json says %s", s, got, want.Bytes())
		}
	})
}

func TestScanAffinityFields(t *testing.T) {
	tests := []struct {
		name, body     string
		user, previous string
		wantErr        bool
	}{
		{name: "both", body: `{"model":"m","user":"u1","previous_response_id":"resp_1"}`, user: "u1", previous: "resp_1"},
		{name: "user not a string is not routed on", body: `{"model":"m","user":{"id":1}}`},
		{name: "previous null", body: `{"model":"m","previous_response_id":null}`},
		{name: "previous number", body: `{"model":"m","previous_response_id":1}`, wantErr: true},
		{name: "duplicate previous", body: `{"model":"m","previous_response_id":"a","previous_response_id":"b"}`, wantErr: true},
		{name: "duplicate user", body: `{"model":"m","user":"a","us\u0065r":"b"}`, wantErr: true},
		{name: "user in another case", body: `{"model":"m","User":"a"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Fields
			err := Scan([]byte(tt.body), &f)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Scan error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got := func(s Span) string {
				if !s.Present() {
					return ""
				}
				return String([]byte(tt.body), s)
			}
			if got(f.User) != tt.user || got(f.PreviousResponse) != tt.previous {
				t.Errorf("user %q previous %q, want %q %q", got(f.User), got(f.PreviousResponse), tt.user, tt.previous)
			}
		})
	}
}

func TestRenameKey(t *testing.T) {
	tests := []struct {
		name, body, want string
		renamed          bool
	}{
		{"renamed", `{"model":"o3","max_tokens":5,"x":{"max_tokens":1}}`, `{"model":"o3","max_completion_tokens":5,"x":{"max_tokens":1}}`, true},
		{"first member", `{ "max_tokens" : 5 }`, `{ "max_completion_tokens" : 5 }`, true},
		{"absent", `{"model":"o3"}`, `{"model":"o3"}`, false},
		{"only nested", `{"a":{"max_tokens":1},"b":["max_tokens"]}`, `{"a":{"max_tokens":1},"b":["max_tokens"]}`, false},
		{"new already there", `{"max_tokens":5,"max_completion_tokens":6}`, `{"max_tokens":5,"max_completion_tokens":6}`, false},
		{"empty object", `{}`, `{}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, renamed := RenameKey(nil, []byte(tt.body), "max_tokens", "max_completion_tokens")
			if string(got) != tt.want || renamed != tt.renamed {
				t.Errorf("RenameKey = %s, %v; want %s, %v", got, renamed, tt.want, tt.renamed)
			}
		})
	}
}

func TestRewriteAsksUsage(t *testing.T) {
	tests := []struct {
		name, body, want string
		asked            bool
	}{
		{"absent", `{"model":"m","stream":true}`, `{"model":"up","stream":true,"stream_options":{"include_usage":true}}`, false},
		{"absent, whitespace and backend last", "{\"model\":\"m\",\"backend\":\"p\" }\n", `{"model":"up" ,"stream_options":{"include_usage":true}}` + "\n", false},
		{"false", `{"model":"m","stream_options":{"include_usage":false}}`, `{"model":"up","stream_options":{"include_usage":true}}`, false},
		{"other option", `{"stream_options":{"include_obfuscation":false},"model":"m"}`, `{"stream_options":{"include_usage":true},"model":"up"}`, false},
		{"null", `{"model":"m","stream_options":null}`, `{"model":"up","stream_options":{"include_usage":true}}`, false},
		{"already asked", `{"model":"m","stream_options":{"include_usage":true}}`, `{"model":"up","stream_options":{"include_usage":true}}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Fields
			if err := Scan([]byte(tt.body), &f); err != nil {
				t.Fatal(err)
			}
			if f.IncludeUsage != tt.asked {
				t.Fatalf("IncludeUsage = %v, want %v", f.IncludeUsage, tt.asked)
			}
			f.AskUsage = true
			got := Rewrite(nil, []byte(tt.body), &f, "up", true)
			if string(got) != tt.want {
				t.Fatalf("Rewrite = %s\nwant      %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON %s", got)
			}
		})
	}
}

func TestScanMaxTokens(t *testing.T) {
	for body, want := range map[string]int64{
		`{"model":"m"}`:                                -1,
		`{"model":"m","max_tokens":100}`:               100,
		`{"max_completion_tokens":50,"max_tokens":20}`: 50,
		`{"max_output_tokens":7}`:                      7,
		`{"max_tokens":null}`:                          -1,
		`{"max_tokens":1.5}`:                           -1,
		`{"x":{"max_tokens":9}}`:                       -1,
		`{"max_tokens":12345678901234567890123}`:       -1,
	} {
		var f Fields
		if err := Scan([]byte(body), &f); err != nil || f.MaxTokens != want {
			t.Errorf("%s: MaxTokens %d, %v; want %d", body, f.MaxTokens, err, want)
		}
	}
}
