package upstreamsim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return v
}

func TestFailCode(t *testing.T) {
	const (
		chatContext = `{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. ` +
			`Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`
		responsesContext = `{"error":{"message":"Your input exceeds the context window of this model. Please adjust your input and try again.",` +
			`"type":"invalid_request_error","param":"input","code":"context_length_exceeded"}}`
		anthropicContext = `{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 250000 tokens > 200000 maximum"}}`
		contentFilter    = `{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy. ` +
			`Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: ` +
			`https://go.microsoft.com/fwlink/?linkid=2198766","type":null,"param":"prompt","code":"content_filter","status":400,` +
			`"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"},` +
			`"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}}}`
	)
	type route struct {
		name, path, body string
		header           map[string]string
	}
	chat := route{"chat", "/v1/chat/completions", chatBody, nil}
	completions := route{"completions", "/v1/completions", `{"model":"m","prompt":"x"}`, nil}
	embeddings := route{"embeddings", "/v1/embeddings", `{"model":"m","input":"x"}`, nil}
	resp := route{"responses", "/v1/responses", `{"model":"m","input":"x"}`, nil}
	azChat := route{"azure chat", "/openai/deployments/dep/chat/completions?api-version=2024-10-21", chatBody, map[string]string{"api-key": "k"}}
	azResp := route{"azure responses", "/openai/v1/responses", `{"model":"dep","input":"x"}`, map[string]string{"api-key": "k"}}
	anthropic := route{"anthropic", "/v1/messages", `{"model":"c","max_tokens":1,"messages":[{"role":"user","content":"x"}]}`,
		map[string]string{"x-api-key": "k", "anthropic-version": "2023-06-01"}}
	withParam := func(body, param string) string {
		return strings.Replace(body, `"param":"messages"`, `"param":"`+param+`"`, 1)
	}

	for _, tc := range []struct {
		route  route
		status string
		code   string
		want   string // the whole body, compared as JSON
	}{
		{chat, "400", "context_length_exceeded", chatContext},
		{completions, "400", "context_length_exceeded", withParam(chatContext, "prompt")},
		{embeddings, "400", "context_length_exceeded", withParam(chatContext, "input")},
		{resp, "400", "context_length_exceeded", responsesContext},
		{azChat, "400", "context_length_exceeded", chatContext},
		{azResp, "400", "context_length_exceeded", responsesContext},
		{anthropic, "400", "context_length_exceeded", anthropicContext},
		{chat, "400", "content_filter", contentFilter},
		{completions, "400", "content_filter", contentFilter},
		{resp, "400", "content_filter", contentFilter},
		{azChat, "400", "content_filter", contentFilter},
		{azResp, "400", "content_filter", contentFilter},
		// Any other code, or a known code with another status: the usual body with it.
		{chat, "429", "insufficient_quota", `{"error":{"message":"simulated 429 from sim","type":"requests","param":null,"code":"insufficient_quota"}}`},
		{chat, "500", "context_length_exceeded", `{"error":{"message":"simulated 500 from sim","type":"server_error","param":null,"code":"context_length_exceeded"}}`},
		{resp, "400", "invalid_prompt", `{"error":{"message":"simulated 400 from sim","type":"invalid_request_error","param":null,"code":"invalid_prompt"}}`},
		{azChat, "429", "insufficient_quota", `{"error":{"code":"insufficient_quota","message":"simulated 429 from sim"}}`},
		{azResp, "503", "Overloaded", `{"error":{"code":"Overloaded","message":"simulated 503 from sim"}}`},
		{anthropic, "400", "content_filter", `{"type":"error","error":{"type":"content_filter","message":"simulated 400 from sim"}}`},
		{anthropic, "529", "overloaded_error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`},
	} {
		t.Run(tc.route.name+" "+tc.status+" "+tc.code, func(t *testing.T) {
			for _, how := range []string{"header", "options"} {
				o := upstreamsim.Options{APIKey: "k", Models: []string{"gpt-x", "m", "dep", "c"}}
				h := map[string]string{"Authorization": "Bearer k", "X-Sim-Fail-Status": tc.status, "X-Sim-Fail-Code": tc.code}
				if how == "options" {
					o.FailStatus, o.FailCode = atoi(t, tc.status), tc.code
					h = map[string]string{"Authorization": "Bearer k"}
				}
				for k, v := range tc.route.header {
					h[k] = v
				}
				s := start(t, o)
				resp := do(t, "POST", "http://"+s.Addr()+tc.route.path, tc.route.body, h)
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != atoi(t, tc.status) {
					t.Errorf("%s: status %d: %s", how, resp.StatusCode, b)
				}
				if got, want := jsonValue(t, string(b)), jsonValue(t, tc.want); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: body\n%s\nwant\n%s", how, b, tc.want)
				}
				if strings.Contains(string(b), `\u003e`) {
					t.Errorf("%s: escaped body %s", how, b)
				}
			}
		})
	}

	t.Run("without status", func(t *testing.T) {
		s := start(t, upstreamsim.Options{FailCode: "context_length_exceeded"})
		for _, r := range []route{chat, resp} {
			if resp := do(t, "POST", "http://"+s.Addr()+r.path, r.body, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("%s: status %d", r.name, resp.StatusCode)
			}
		}
	})
	t.Run("header clears code", func(t *testing.T) {
		s := start(t, upstreamsim.Options{FailStatus: 400, FailCode: "content_filter"})
		wantError(t, do(t, "POST", s.URL()+"/chat/completions", chatBody, map[string]string{"X-Sim-Fail-Code": ""}), 400, "")
		wantError(t, do(t, "POST", s.URL()+"/chat/completions", chatBody, map[string]string{"X-Sim-Fail-Code": "context_length_exceeded"}),
			400, "context_length_exceeded")
		if resp := do(t, "POST", s.URL()+"/chat/completions", chatBody, map[string]string{"X-Sim-Fail-Status": "0"}); resp.StatusCode != http.StatusOK {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
