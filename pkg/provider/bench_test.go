package provider

import (
	"os"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

// BenchmarkWriteRequest compares building one upstream chat request per adapter: the
// passthrough kinds (OpenAI, Azure) against the translating one (Anthropic).
func BenchmarkWriteRequest(b *testing.B) {
	body, err := os.ReadFile("testdata/golden/chat_to_anthropic.tools.in.json")
	if err != nil {
		b.Fatal(err)
	}
	var f jsonscan.Fields
	if err := jsonscan.Scan(body, &f); err != nil {
		b.Fatal(err)
	}
	for _, kind := range []string{"openai", "azure", "anthropic"} {
		b.Run(kind, func(b *testing.B) {
			ad, a := prepared(b, kind, "https://h.example", "")
			req := fasthttp.AcquireRequest()
			defer fasthttp.ReleaseRequest(req)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				req.Reset()
				if err := ad.WriteRequest(req, a, OpChat, "upstream-model", body, &f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStreamEvent is the per-event cost of translating an Anthropic stream.
func BenchmarkStreamEvent(b *testing.B) {
	ev := []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello, world"}}`)
	tr := NewAnthropicToChatStream("m")
	out, _ := tr.Event(nil, []byte(`{"type":"message_start","message":{"id":"msg_1","model":"c","usage":{"input_tokens":1}}}`), nil)
	b.ReportAllocs()
	for b.Loop() {
		out, _ = tr.Event([]byte("content_block_delta"), ev, out[:0])
	}
}
