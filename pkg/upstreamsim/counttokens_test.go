package upstreamsim_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go"
	sdkoption "github.com/anthropics/anthropic-sdk-go/option"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

func TestAnthropicCountTokens(t *testing.T) {
	s := start(t, upstreamsim.Options{Name: "an", APIKey: "k", Models: []string{"claude-x"}})
	url := s.AnthropicURL() + "/v1/messages/count_tokens"
	hdr := map[string]string{"x-api-key": "k", "anthropic-version": "2023-06-01"}
	with := func(k, v string) map[string]string {
		h := map[string]string{"x-api-key": "k", "anthropic-version": "2023-06-01"}
		h[k] = v
		return h
	}
	for _, tc := range []struct {
		name   string
		method string
		body   string
		header map[string]string
		status int
		want   string
	}{
		// 26 characters, then 14 more of system prompt.
		{"message", "POST", `{"model":"claude-x","messages":[{"role":"user","content":"Count these tokens please."}]}`, hdr, 200, `{"input_tokens":6}`},
		{"system and blocks", "POST", `{"model":"claude-x","system":[{"type":"text","text":"You are terse."}],"messages":[{"role":"user","content":[{"type":"text","text":"Count these tokens please."}]}]}`,
			hdr, 200, `{"input_tokens":10}`},
		// "hi", then "lookup" + "find" + {"type":"object"}: 29 characters.
		{"tools", "POST", `{"model":"claude-x","tools":[{"name":"lookup","description":"find","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"hi"}]}`,
			hdr, 200, `{"input_tokens":7}`},
		{"at least one", "POST", `{"model":"claude-x","messages":[{"role":"user","content":"x"}]}`, hdr, 200, `{"input_tokens":1}`},
		{"no max_tokens needed", "POST", `{"model":"claude-x","messages":[{"role":"user","content":"abcdefgh"}]}`, hdr, 200, `{"input_tokens":2}`},
		{"wrong key", "POST", `{"model":"claude-x","messages":[{"role":"user","content":"x"}]}`, with("x-api-key", "no"), 401, `"type":"authentication_error"`},
		{"version required", "POST", `{"model":"claude-x","messages":[{"role":"user","content":"x"}]}`, map[string]string{"x-api-key": "k"}, 400, `"anthropic-version: header is required"`},
		{"model required", "POST", `{"messages":[{"role":"user","content":"x"}]}`, hdr, 400, `"model: Field required"`},
		{"messages required", "POST", `{"model":"claude-x"}`, hdr, 400, `"messages: Field required"`},
		{"bad json", "POST", `{`, hdr, 400, `"type":"invalid_request_error"`},
		{"unknown model", "POST", `{"model":"gpt","messages":[{"role":"user","content":"x"}]}`, hdr, 404, `"type":"not_found_error"`},
		{"wrong method", "GET", "", hdr, 405, `"type":"error"`},
		{"overloaded", "POST", `{"model":"claude-x","messages":[{"role":"user","content":"x"}]}`, with("X-Sim-Fail-Status", "529"), 529, `"type":"overloaded_error"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, tc.method, url, tc.body, tc.header)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if got := strings.TrimSpace(string(b)); tc.status == 200 && got != tc.want || !strings.Contains(got, tc.want) {
				t.Errorf("body %s, want %s", got, tc.want)
			}
			if resp.Header.Get("X-Sim-Name") != "an" || !strings.HasPrefix(resp.Header.Get("request-id"), "req_") {
				t.Errorf("headers = %v", resp.Header)
			}
		})
	}
	if st := s.Stats(); st.ChatRequests != 0 {
		t.Errorf("count_tokens counted as messages: %+v", st)
	}

	t.Run("latency", func(t *testing.T) {
		begin := time.Now()
		do(t, "POST", url, `{"model":"claude-x","messages":[{"role":"user","content":"x"}]}`, with("X-Sim-Latency-Ms", "30"))
		if d := time.Since(begin); d < 30*time.Millisecond {
			t.Errorf("took %v", d)
		}
	})

	t.Run("sdk", func(t *testing.T) {
		client := sdk.NewClient(sdkoption.WithBaseURL(s.AnthropicURL()), sdkoption.WithAPIKey("k"), sdkoption.WithMaxRetries(0))
		n, err := client.Messages.CountTokens(context.Background(), sdk.MessageCountTokensParams{
			Model:    "claude-x",
			System:   sdk.MessageCountTokensParamsSystemUnion{OfString: sdk.String("You are terse.")},
			Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("Count these tokens please."))},
		})
		if err != nil || n.InputTokens != 10 {
			t.Errorf("CountTokens = %+v, %v", n, err)
		}
		_, err = client.Messages.CountTokens(context.Background(), sdk.MessageCountTokensParams{
			Model:    "unknown",
			Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("x"))},
		})
		var apiErr *sdk.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
			t.Errorf("unknown model: %v", err)
		}
	})
}
