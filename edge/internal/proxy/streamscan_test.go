package proxy

import (
	"bytes"
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
