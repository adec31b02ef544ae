package provider

import "testing"

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
