package provider

import (
	"errors"
	"slices"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

func TestParseModelIDs(t *testing.T) {
	tests := []struct {
		name, kind, body string
		want             []string
		complete         bool
		wantErr          bool
	}{
		{name: "openai", kind: "openai", complete: true, want: []string{"gpt-4o", "text-embedding-3-small"},
			body: `{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1686935002,"owned_by":"openai"},{"id":"text-embedding-3-small","object":"model","created":1,"owned_by":"system"}]}`},
		{name: "anthropic", kind: "anthropic", complete: true, want: []string{"claude-opus-4-1-20250805", "claude-sonnet-4-5-20250929"},
			body: `{"data":[{"type":"model","id":"claude-sonnet-4-5-20250929","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"},{"type":"model","id":"claude-opus-4-1-20250805","display_name":"Claude Opus 4.1","created_at":"2025-08-05T00:00:00Z"}],"has_more":false,"first_id":"claude-sonnet-4-5-20250929","last_id":"claude-opus-4-1-20250805"}`},
		{name: "anthropic, more pages", kind: "claude", complete: false, want: []string{"claude-3-haiku"},
			body: `{"data":[{"type":"model","id":"claude-3-haiku"}],"has_more":true,"first_id":"claude-3-haiku","last_id":"claude-3-haiku"}`},
		{name: "azure deployments", kind: "azure", complete: true, want: []string{"gpt4o-prod"},
			body: `{"data":[{"scale_settings":{"scale_type":"standard"},"model":"gpt-4o","owner":"organization-owner","id":"gpt4o-prod","status":"succeeded","created_at":1646126127,"updated_at":1646127311,"object":"deployment"}],"object":"list"}`},
		{name: "gemini", kind: "gemini", complete: true, want: []string{"gemini-2.0-flash", "models/gemini-2.0-flash"},
			body: `{"object":"list","data":[{"id":"models/gemini-2.0-flash","object":"model","owned_by":"google"}]}`},
		{name: "ollama-style models array", kind: "openai", complete: true, want: []string{"llama3"},
			body: `{"models":[{"name":"llama3"}]}`},
		{name: "empty list", kind: "openai", complete: true, want: nil, body: `{"object":"list","data":[]}`},
		{name: "error body", kind: "openai", body: `{"error":{"message":"nope"}}`, wantErr: true},
		{name: "html", kind: "azure", body: `<html>`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, complete, err := ParseModelIDs(tt.kind, []byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, ErrNoModelList) {
					t.Fatalf("error %v, want ErrNoModelList", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for id := range set {
				got = append(got, id)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) || complete != tt.complete {
				t.Errorf("got %v complete=%v, want %v complete=%v", got, complete, tt.want, tt.complete)
			}
			for _, id := range tt.want {
				if !set.Has(id) {
					t.Errorf("Has(%q) = false", id)
				}
			}
		})
	}
}

func TestWriteMessagesRequest(t *testing.T) {
	ad, a := prepared(t, "anthropic", "https://api.anthropic.com/v1", "")
	native, ok := ad.(NativeMessages)
	if !ok {
		t.Fatal("the Anthropic adapter does not implement NativeMessages")
	}
	if _, ok := Adapter(openAI{}).(NativeMessages); ok {
		t.Error("the OpenAI adapter must not claim NativeMessages")
	}
	body := []byte(`{"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
	var f jsonscan.Fields
	if err := jsonscan.Scan(body, &f); err != nil {
		t.Fatal(err)
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.Set("x-api-key", "client-token") // must not survive
	if err := native.WriteMessagesRequest(req, a, "claude-sonnet-4-5", body, &f); err != nil {
		t.Fatal(err)
	}
	if got := req.URI().String(); got != "https://api.anthropic.com/v1/messages" {
		t.Errorf("URL %q", got)
	}
	if got := string(req.Header.Peek("x-api-key")); got != "secret-key" {
		t.Errorf("x-api-key %q, want the provider's", got)
	}
	if want := `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`; string(req.Body()) != want {
		t.Errorf("body %s", req.Body())
	}
}
