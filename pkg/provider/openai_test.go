package provider

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

func TestOpenAIEndpoint(t *testing.T) {
	tests := []struct {
		base, want string
		wantErr    bool
	}{
		{base: "https://api.openai.com/v1", want: "https://api.openai.com/v1/chat/completions"},
		{base: "https://api.openai.com/v1/", want: "https://api.openai.com/v1/chat/completions"},
		{base: "https://api.deepseek.com", want: "https://api.deepseek.com/v1/chat/completions"},
		{base: "https://api.groq.com/openai/v1", want: "https://api.groq.com/openai/v1/chat/completions"},
		{base: "https://open.bigmodel.cn/api/paas/v4", want: "https://open.bigmodel.cn/api/paas/v4/chat/completions"},
		{base: "http://127.0.0.1:8081/v1/chat/completions", want: "http://127.0.0.1:8081/v1/chat/completions"},
		{base: "https://x.example/v1?key=1", want: "https://x.example/v1/chat/completions?key=1"},
		{base: "http://h/v1/embeddings", want: "http://h/v1/chat/completions"},
		{base: "ftp://x", wantErr: true},
		{base: "/v1", wantErr: true},
	}
	for _, tt := range tests {
		got, err := OpenAIEndpoint(tt.base, OpChat.String())
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("OpenAIEndpoint(%q) = %q, %v; want %q (error %v)", tt.base, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestReasoningModelsGetMaxCompletionTokens(t *testing.T) {
	tests := []struct {
		model, kind string
		renamed     bool
	}{
		{"o1", "openai", true}, {"o3-mini", "openai", true}, {"o4-mini-2025-04-16", "openai", true},
		{"gpt-5", "openai", true}, {"gpt-5.1", "openai", true}, {"gpt-5-mini", "azure", true},
		{"gpt-4o", "openai", false}, {"o10x", "openai", false}, {"gpt-4.1", "azure", false}, {"omni", "openai", false},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.model, func(t *testing.T) {
			ad, _ := Lookup(tt.kind)
			acct := Account{Kind: tt.kind, BaseURL: "http://127.0.0.1:1/v1", APIVersion: "2024-10-21"}
			if err := ad.Prepare(&acct); err != nil {
				t.Fatal(err)
			}
			body := []byte(`{"model":"m","max_tokens":100,"messages":[]}`)
			var f jsonscan.Fields
			if err := jsonscan.Scan(body, &f); err != nil {
				t.Fatal(err)
			}
			var req fasthttp.Request
			if err := ad.WriteRequest(&req, &acct, OpChat, tt.model, body, &f); err != nil {
				t.Fatal(err)
			}
			got := string(req.Body())
			if renamed := strings.Contains(got, `"max_completion_tokens":100`) && !strings.Contains(got, `"max_tokens"`); renamed != tt.renamed {
				t.Errorf("body %s; renamed %v, want %v", got, renamed, tt.renamed)
			}
		})
	}
}
