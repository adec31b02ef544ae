package proxy

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The relay's scans agree with their plain definitions on every split of real
// streams and on edge cases.
func TestStreamScans(t *testing.T) {
	completeRef := func(b []byte) int {
		end := 0
		if i := bytes.LastIndex(b, []byte("\n\n")); i >= 0 {
			end = i + 2
		}
		if i := bytes.LastIndex(b, []byte("\n\r\n")); i >= 0 {
			end = max(end, i+3)
		}
		return end
	}
	usageChunk := "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5}}\n\n"
	inputs := []string{"", "\n", "\n\n", "\r\n\r\n", "a\n\r\n", "\n\r", "data: x\n\ndata: y", "data: x\r\n\r\ndata: y\n", "]", `"choices":[]`,
		`"choices": []`, `x"choices":[1]`, `["choices":[]`, benchSSE, benchSSE + usageChunk, usageChunk + "data: [DONE]\n\n", benchAnthropicSSE}
	for _, in := range inputs {
		for cut := 0; cut <= len(in); cut++ {
			b := []byte(in[:cut])
			if got, want := completeEvents(b), completeRef(b); got != want {
				t.Fatalf("completeEvents(%q) = %d, want %d", b, got, want)
			}
			if got, want := emptyChoices(b), bytes.Contains(b, []byte(`"choices":[]`)); got != want {
				t.Fatalf("emptyChoices(%q) = %v, want %v", b, got, want)
			}
		}
	}
}

// hasContent agrees with its definition, a search for each quoted key followed by
// ':' and a value other than null, "", [] or {} (what it replaced), on chunks of
// every provider shape and on strings that only look like keys.
func TestHasContent(t *testing.T) {
	ref := hasContentDefinition
	for _, tc := range []struct {
		d    string
		want bool
	}{
		{`{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`, false},
		{`{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"refusal":null}}]}`, false},
		{`{"choices":[{"index":0,"delta":{"content":"Hi"}}]}`, true},
		{`{"choices":[{"delta":{},"finish_reason":"stop"}]}`, true},
		{`{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c"}]}}]}`, true},
		{`{"choices":[{"delta":{"tool_calls":[ ]}}]}`, false},
		{`{"choices":[{"delta":{"role":"content"}}]}`, false},
		{`{"choices":[{"delta":{"role":"say \"content\": x"}}]}`, false},
		{`{"choices":[{"delta":{"role":"a\\","content" : "x"}}]}`, true},
		{`{"choices":[{"delta":{"role":"a\\\"content\": 1"}}]}`, false},
		{`{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}`, true},
		{`{"type":"message_start","message":{"content":[]}}`, false},
		{`{"type":"response.output_text.delta","delta":"x"}`, false},
		{`{"content" :  {"a":1}}`, true},
		{`{"content":{ }}`, false},
		{`{"content":0}`, true},
		{`{"content":`, false},
		{`"content`, false},
	} {
		if got := hasContent([]byte(tc.d)); got != tc.want || got != ref([]byte(tc.d)) {
			t.Errorf("hasContent(%s) = %v, want %v (definition: %v)", tc.d, got, tc.want, ref([]byte(tc.d)))
		}
	}
}

// hasContentDefinition is what hasContent replaced, one search per key.
func hasContentDefinition(d []byte) bool {
	for _, key := range []string{`"content"`, `"text"`, `"tool_calls"`, `"function_call"`, `"refusal"`, `"finish_reason"`} {
		for rest := d; ; {
			i := bytes.Index(rest, []byte(key))
			if i < 0 {
				break
			}
			rest = rest[i+len(key):]
			v := bytes.TrimLeft(rest, " \t\r\n")
			if len(v) == 0 || v[0] != ':' {
				continue
			}
			if nonEmpty(bytes.TrimLeft(v[1:], " \t\r\n")) {
				return true
			}
		}
	}
	return false
}

func FuzzHasContent(f *testing.F) {
	for _, s := range []string{`{"choices":[{"delta":{"content":"Hi"}}]}`, `{"a":"\\","text":""}`, `{"x":{"finish_reason":null}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, d []byte) {
		if !json.Valid(d) {
			t.Skip()
		}
		if got, want := hasContent(d), hasContentDefinition(d); got != want {
			t.Fatalf("hasContent(%s) = %v, its definition says %v", d, got, want)
		}
	})
}

func BenchmarkHasContent(b *testing.B) {
	events := [][]byte{
		[]byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"up-a","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}`),
		[]byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"up-a","choices":[{"index":0,"delta":{"content":"Load balancers hum"},"logprobs":null,"finish_reason":null}]}`),
	}
	b.Run("one-pass", func(b *testing.B) {
		for b.Loop() {
			for _, e := range events {
				hasContent(e)
			}
		}
	})
	b.Run("per-key", func(b *testing.B) {
		for b.Loop() {
			for _, e := range events {
				hasContentDefinition(e)
			}
		}
	})
}
