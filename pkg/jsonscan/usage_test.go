package jsonscan

import (
	"strings"
	"testing"
)

func TestScanUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want Usage
		ok   bool
	}{
		{"openai", `{"id":"x","choices":[{"message":{"content":"{\"usage\":1}"}}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":2}}}`, Usage{Input: 12, Output: 3, Cached: 2}, true},
		{"anthropic with cache", `{"type":"message","usage":{"input_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":7,"output_tokens":9}}`, Usage{Input: 112, Output: 9, Cached: 100}, true},
		{"embeddings", `{"data":[{"embedding":[0.1,-0.2]}], "usage" : { "prompt_tokens" : 4 , "total_tokens":4}}`, Usage{Input: 4, Output: -1}, true},
		{"anthropic message_start", `{"type":"message_start","message":{"id":"m","content":[],"usage":{"input_tokens":25,"output_tokens":1}}}`, Usage{Input: 25, Output: 1}, true},
		{"anthropic message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}`, Usage{Input: -1, Output: 15}, true},
		{"responses completed", `{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":8,"output_tokens":2,"total_tokens":10}}}`, Usage{Input: 8, Output: 2}, true},
		{"deeper nesting ignored", `{"message":{"message":{"usage":{"input_tokens":1}}}}`, NoUsage, false},
		{"nested usage only", `{"choices":[{"usage":{"prompt_tokens":1}}]}`, NoUsage, false},
		{"null usage", `{"usage":null}`, NoUsage, false},
		{"empty object", `{}`, NoUsage, false},
		{"empty usage", `{"usage":{}}`, NoUsage, false},
		{"no usage", `{"id":"x"}`, NoUsage, false},
		{"not an object", `[1,2]`, NoUsage, false},
		{"empty", ``, NoUsage, false},
		{"cut in a string", `{"id":"x`, NoUsage, false},
		{"cut in usage", `{"usage":{"prompt_tokens":3,"completion_tok`, NoUsage, false},
		{"cut after usage", `{"usage":{"prompt_tokens":3,"completion_tokens":4},"x":`, Usage{Input: 3, Output: 4}, true},
		{"negative", `{"usage":{"prompt_tokens":-3}}`, NoUsage, false},
		{"float", `{"usage":{"prompt_tokens":3.5,"completion_tokens":2}}`, Usage{Input: -1, Output: 2}, true},
		{"cache without input", `{"usage":{"cache_read_input_tokens":3,"output_tokens":2}}`, Usage{Input: -1, Output: 2}, true},
		{"unbalanced", `{"a":[[[[`, NoUsage, false},
		{"openai details", `{"usage":{"prompt_tokens":20,"completion_tokens":30,"prompt_tokens_details":{"cached_tokens":8,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":12}}}`, Usage{Input: 20, Output: 30, Cached: 8, Reasoning: 12}, true},
		{"responses details", `{"object":"response","usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":4},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":5},"total_tokens":29}}`, Usage{Input: 20, Output: 9, Cached: 4, Reasoning: 5}, true},
		{"details without counts", `{"usage":{"prompt_tokens_details":{"cached_tokens":4}}}`, NoUsage, false},
		{"escaped quote in key", `{"a\"b":1,"usage":{"output_tokens":2}}`, Usage{Input: -1, Output: 2}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ScanUsage([]byte(tc.body))
			if got != tc.want || ok != tc.ok {
				t.Fatalf("ScanUsage = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzScanUsage(f *testing.F) {
	f.Add([]byte(`{"usage":{"prompt_tokens":12,"completion_tokens":3}}`))
	f.Add([]byte(`{"a":"\"","usage":{"input_tokens":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, ok := ScanUsage(b) // must not panic on anything an upstream sends
		if u.Input < -1 || u.Output < -1 || ok == (u == NoUsage) {
			t.Fatalf("ScanUsage(%q) = %+v, %v", b, u, ok)
		}
	})
}

func TestScanUsageAllocs(t *testing.T) {
	body := []byte(`{"id":"x","usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`)
	if n := testing.AllocsPerRun(100, func() { ScanUsage(body) }); n != 0 {
		t.Fatalf("ScanUsage allocates %v times", n)
	}
}

func TestUsageMerge(t *testing.T) {
	u := NoUsage
	u.Merge(Usage{Input: 25, Output: 1})  // message_start
	u.Merge(Usage{Input: -1, Output: 15}) // message_delta
	if u != (Usage{Input: 25, Output: 15}) {
		t.Fatalf("merged %+v, want {25 15}", u)
	}
}

func TestScanModel(t *testing.T) {
	for body, want := range map[string]string{
		`{"id":"x","object":"chat.completion","model":"gpt-4o-2024-08-06","choices":[]}`: "gpt-4o-2024-08-06",
		`{"type":"message_start","message":{"id":"m","model":"claude-sonnet-4-5"}}`:      "claude-sonnet-4-5",
		`{"type":"response.created","response":{"model":"gpt-5"}}`:                       "gpt-5",
		`{"model":null}`:              "",
		`{"choices":[{"model":"x"}]}`: "",
		`{"model":"cut`:               "",
	} {
		if got := string(ScanModel([]byte(body))); got != want {
			t.Errorf("ScanModel(%s) = %q, want %q", body, got, want)
		}
	}
}

// A large answer's usage is read from its end; the result is the same as a walk.
func TestScanUsageTail(t *testing.T) {
	pad := strings.Repeat(`{\"usage\":{\"prompt_tokens\":999}} `, 200)
	for _, tc := range []struct {
		name, body string
		want       Usage
		ok         bool
	}{
		{"chat", `{"choices":[{"message":{"content":"` + pad + `"}}],"usage":{"prompt_tokens":7,"completion_tokens":2}}`, Usage{Input: 7, Output: 2}, true},
		{"responses with a tool schema property named usage", `{"output":[{"content":[{"text":"` + pad + `"}]}],"tools":[{"parameters":{"properties":{"usage":{"type":"integer"}}}}],"usage":{"input_tokens":3,"output_tokens":1}}`, Usage{Input: 3, Output: 1}, true},
		{"schema property only", `{"output":"` + pad + `","tools":[{"parameters":{"properties":{"usage":{"type":"integer"}}}}]}`, NoUsage, false},
		{"usage first", `{"usage":{"prompt_tokens":5},"choices":[{"message":{"content":"` + pad + `"}}]}`, Usage{Input: 5, Output: -1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ok := ScanUsage([]byte(tc.body)); got != tc.want || ok != tc.ok {
				t.Fatalf("ScanUsage = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// BenchmarkScanUsage reads the usage of a small and a large chat answer: from their
// end, where the usage is, rather than walking from the start.
func BenchmarkScanUsage(b *testing.B) {
	small := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"up-a","choices":[{"index":0,"message":{"role":"assistant","content":"Load balancers hum; quiet servers share the load; packets find their way."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":17,"total_tokens":29}}`)
	large := []byte(`{"id":"chatcmpl-1","choices":[{"message":{"content":"` + strings.Repeat("lorem ipsum dolor ", 450) + `"}}],"usage":{"prompt_tokens":12,"completion_tokens":17,"total_tokens":29},"system_fingerprint":"fp_1"}`)
	for _, tc := range []struct {
		name string
		body []byte
	}{{"350B", small}, {"8KiB", large}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				if _, ok := ScanUsage(tc.body); !ok {
					b.Fatal("no usage")
				}
			}
		})
	}
}
