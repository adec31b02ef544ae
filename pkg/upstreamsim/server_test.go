package upstreamsim_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

func start(t *testing.T, o upstreamsim.Options) *upstreamsim.Server {
	t.Helper()
	s := upstreamsim.New(o)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func do(t *testing.T, method, url, body string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decoding %T: %v", v, err)
	}
	return v
}

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// wantError checks an OpenAI-style error response.
func wantError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d", resp.StatusCode, status)
	}
	e := decode[errorBody](t, resp)
	if e.Error.Message == "" || e.Error.Type == "" {
		t.Errorf("error body lacks message or type: %+v", e)
	}
	if code != "" && (e.Error.Code == nil || *e.Error.Code != code) {
		t.Errorf("error code = %v, want %q", e.Error.Code, code)
	}
}

type chatCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Delta struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"delta"`
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// readEvents reads SSE data payloads until EOF, returning the error that ended the body
// (nil for a clean end).
func readEvents(resp *http.Response) ([]string, error) {
	var events []string
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if data, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: "); ok {
			events = append(events, data)
		}
		if errors.Is(err, io.EOF) {
			return events, nil
		}
		if err != nil {
			return events, err
		}
	}
}

const chatBody = `{"model":"gpt-x","messages":[{"role":"user","content":"say hi to me"}]}`

func TestChatCompletion(t *testing.T) {
	for _, path := range []string{"/v1/chat/completions", "/chat/completions"} {
		t.Run(path, func(t *testing.T) {
			s := start(t, upstreamsim.Options{Name: "alpha"})
			resp := do(t, "POST", "http://"+s.Addr()+path, chatBody, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d", resp.StatusCode)
			}
			if got := resp.Header.Get("X-Sim-Name"); got != "alpha" {
				t.Errorf("X-Sim-Name = %q", got)
			}
			c := decode[chatCompletion](t, resp)
			if c.ID == "" || c.Object != "chat.completion" || c.Created == 0 || c.Model != "gpt-x" {
				t.Errorf("bad envelope: %+v", c)
			}
			if len(c.Choices) != 1 {
				t.Fatalf("choices = %d", len(c.Choices))
			}
			ch := c.Choices[0]
			if ch.Message.Role != "assistant" || ch.Message.Content != "hello from alpha: gpt-x" {
				t.Errorf("message = %+v", ch.Message)
			}
			if ch.FinishReason == nil || *ch.FinishReason != "stop" {
				t.Errorf("finish_reason = %v", ch.FinishReason)
			}
			if u := c.Usage; u == nil || u.PromptTokens != 4 || u.CompletionTokens != 4 || u.TotalTokens != 8 {
				t.Errorf("usage = %+v", u)
			}
		})
	}
}

func TestChatStream(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       upstreamsim.Options
		header     map[string]string
		body       string
		wantChunks int
		wantUsage  bool
	}{
		{name: "default", wantChunks: upstreamsim.DefaultChunks},
		{name: "one chunk", opts: upstreamsim.Options{Chunks: 1}, wantChunks: 1},
		{name: "more chunks than runes", opts: upstreamsim.Options{Chunks: 100}, wantChunks: 100},
		{name: "header override", header: map[string]string{"X-Sim-Chunks": "3"}, wantChunks: 3},
		{
			name:       "include usage",
			body:       `{"model":"gpt-x","stream":true,"stream_options":{"include_usage":true}}`,
			wantChunks: upstreamsim.DefaultChunks,
			wantUsage:  true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.opts)
			body := tc.body
			if body == "" {
				body = `{"model":"gpt-x","stream":true,"messages":[{"role":"user","content":"hi"}]}`
			}
			resp := do(t, "POST", s.URL()+"/chat/completions", body, tc.header)
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type = %q", ct)
			}
			events, err := readEvents(resp)
			if err != nil {
				t.Fatal(err)
			}
			// role, content chunks, finish, [usage], [DONE]
			want := 1 + tc.wantChunks + 1 + 1
			if tc.wantUsage {
				want++
			}
			if len(events) != want {
				t.Fatalf("got %d events, want %d: %q", len(events), want, events)
			}
			if events[len(events)-1] != "[DONE]" {
				t.Fatalf("last event = %q", events[len(events)-1])
			}
			var chunks []chatCompletion
			for _, ev := range events[:len(events)-1] {
				var c chatCompletion
				if err := json.Unmarshal([]byte(ev), &c); err != nil {
					t.Fatalf("event %q: %v", ev, err)
				}
				if c.Object != "chat.completion.chunk" || c.Model != "gpt-x" || len(chunks) > 0 && c.ID != chunks[0].ID {
					t.Errorf("bad chunk envelope: %q", ev)
				}
				chunks = append(chunks, c)
			}
			if d := chunks[0].Choices[0].Delta; d.Role != "assistant" {
				t.Errorf("first delta = %+v, want role assistant", d)
			}
			var text strings.Builder
			for _, c := range chunks[1 : 1+tc.wantChunks] {
				if c.Choices[0].FinishReason != nil {
					t.Errorf("content chunk has finish_reason %q", *c.Choices[0].FinishReason)
				}
				text.WriteString(c.Choices[0].Delta.Content)
			}
			if got, want := text.String(), upstreamsim.Reply(upstreamsim.DefaultName, "gpt-x"); got != want {
				t.Errorf("streamed text = %q, want %q", got, want)
			}
			if f := chunks[1+tc.wantChunks].Choices[0].FinishReason; f == nil || *f != "stop" {
				t.Errorf("finish chunk finish_reason = %v", f)
			}
			if tc.wantUsage {
				last := chunks[len(chunks)-1]
				if len(last.Choices) != 0 || last.Usage == nil || last.Usage.TotalTokens == 0 {
					t.Errorf("usage chunk = %+v", last)
				}
			}
		})
	}
}

// TestStreamFlushesEachEvent shows events are not buffered: with a very long chunk delay
// the first event still arrives, and Close cuts the pending delay short.
func TestStreamFlushesEachEvent(t *testing.T) {
	s := start(t, upstreamsim.Options{ChunkDelay: time.Hour})
	resp := do(t, "POST", s.URL()+"/chat/completions", `{"model":"m","stream":true}`, nil)
	first := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		first <- line
	}()
	select {
	case line := <-first:
		if !strings.HasPrefix(line, "data: {") || !strings.Contains(line, `"role":"assistant"`) {
			t.Errorf("first line = %q", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("first event was not flushed")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestAuth(t *testing.T) {
	s := start(t, upstreamsim.Options{APIKey: "sk-test"})
	for _, tc := range []struct {
		name   string
		header map[string]string
		status int
	}{
		{"missing", nil, http.StatusUnauthorized},
		{"wrong bearer", map[string]string{"Authorization": "Bearer sk-nope"}, http.StatusUnauthorized},
		{"key without Bearer", map[string]string{"Authorization": "sk-test"}, http.StatusUnauthorized},
		{"wrong api-key", map[string]string{"api-key": "sk-nope"}, http.StatusUnauthorized},
		{"bearer", map[string]string{"Authorization": "Bearer sk-test"}, http.StatusOK},
		{"api-key", map[string]string{"api-key": "sk-test"}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, "POST", s.URL()+"/chat/completions", chatBody, tc.header)
			if tc.status == http.StatusOK {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status = %d", resp.StatusCode)
				}
				return
			}
			wantError(t, resp, tc.status, "invalid_api_key")
		})
	}
}

func TestFailStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   upstreamsim.Options
		header map[string]string
		method string
		path   string
		body   string
		status int
		code   string
	}{
		{"options chat", upstreamsim.Options{FailStatus: 503}, nil, "POST", "/chat/completions", chatBody, 503, ""},
		{"options rate limit", upstreamsim.Options{FailStatus: 429}, nil, "POST", "/chat/completions", chatBody, 429, "rate_limit_exceeded"},
		{"options models", upstreamsim.Options{FailStatus: 500}, nil, "GET", "/models", "", 500, ""},
		{"options beats bad body", upstreamsim.Options{FailStatus: 502}, nil, "POST", "/embeddings", "{", 502, ""},
		{"header", upstreamsim.Options{}, map[string]string{"X-Sim-Fail-Status": "503"}, "POST", "/completions", `{"model":"m"}`, 503, ""},
		{"header overrides options", upstreamsim.Options{FailStatus: 500}, map[string]string{"X-Sim-Fail-Status": "429"}, "POST", "/chat/completions", chatBody, 429, "rate_limit_exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.opts)
			wantError(t, do(t, tc.method, s.URL()+tc.path, tc.body, tc.header), tc.status, tc.code)
		})
	}

	t.Run("header disables", func(t *testing.T) {
		s := start(t, upstreamsim.Options{FailStatus: 500})
		resp := do(t, "POST", s.URL()+"/chat/completions", chatBody, map[string]string{"X-Sim-Fail-Status": "0"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d", resp.StatusCode)
		}
	})
}

func TestFailAfterChunks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   upstreamsim.Options
		header map[string]string
		path   string
		body   string
		want   int
	}{
		{"chat", upstreamsim.Options{FailAfterChunks: 2}, nil, "/chat/completions", `{"model":"m","stream":true}`, 2},
		{"header", upstreamsim.Options{}, map[string]string{"X-Sim-Fail-After-Chunks": "3"}, "/chat/completions", `{"model":"m","stream":true}`, 3},
		{"completions", upstreamsim.Options{FailAfterChunks: 1}, nil, "/completions", `{"model":"m","stream":true}`, 1},
		// Past the end: everything but [DONE] arrives, then the cut.
		{"beyond stream", upstreamsim.Options{FailAfterChunks: 100, Chunks: 2}, nil, "/chat/completions", `{"model":"m","stream":true}`, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.opts)
			resp := do(t, "POST", s.URL()+tc.path, tc.body, tc.header)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d", resp.StatusCode)
			}
			events, err := readEvents(resp)
			if err == nil {
				t.Error("stream ended cleanly, want a broken body")
			}
			if len(events) != tc.want {
				t.Errorf("got %d events, want %d: %q", len(events), tc.want, events)
			}
			for _, ev := range events {
				if ev == "[DONE]" {
					t.Error("got [DONE] from a cut stream")
				}
			}
		})
	}

	t.Run("non-stream unaffected", func(t *testing.T) {
		s := start(t, upstreamsim.Options{FailAfterChunks: 1})
		if resp := do(t, "POST", s.URL()+"/chat/completions", chatBody, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d", resp.StatusCode)
		}
	})
}

func TestSetOptions(t *testing.T) {
	s := start(t, upstreamsim.Options{Name: "before"})
	chat := func() *http.Response { return do(t, "POST", s.URL()+"/chat/completions", chatBody, nil) }

	if c := decode[chatCompletion](t, chat()); c.Choices[0].Message.Content != "hello from before: gpt-x" {
		t.Errorf("content = %q", c.Choices[0].Message.Content)
	}

	o := s.Options()
	o.FailStatus = 503
	s.SetOptions(o)
	wantError(t, chat(), 503, "")

	s.SetOptions(upstreamsim.Options{Name: "after", Models: []string{"other"}})
	wantError(t, chat(), http.StatusNotFound, "model_not_found")

	s.SetOptions(upstreamsim.Options{Name: "after"})
	if c := decode[chatCompletion](t, chat()); c.Choices[0].Message.Content != "hello from after: gpt-x" {
		t.Errorf("content = %q", c.Choices[0].Message.Content)
	}
}

func TestStats(t *testing.T) {
	s := start(t, upstreamsim.Options{})
	auth := map[string]string{"Authorization": "Bearer k1", "X-Trace": "t1"}
	do(t, "POST", s.URL()+"/chat/completions", `{"model":"a"}`, auth)
	do(t, "POST", s.URL()+"/chat/completions", `{"model":"a","stream":true}`, nil)
	do(t, "POST", s.URL()+"/chat/completions", `{"model":"b"}`, map[string]string{"X-Sim-Fail-Status": "500"})
	do(t, "POST", s.URL()+"/embeddings", `{"model":"e","input":"x"}`, nil)
	do(t, "POST", s.URL()+"/chat/completions", `not json`, nil)
	last := `{"model":"c","messages":[]}`
	do(t, "POST", s.URL()+"/completions", last, auth)
	do(t, "GET", s.URL()+"/models", "", map[string]string{"Authorization": "Bearer health"})
	do(t, "GET", s.URL()+"/nowhere", "", nil)

	st := s.Stats()
	if st.Requests != 8 || st.ChatRequests != 4 {
		t.Errorf("requests = %d, chat = %d; want 8, 4", st.Requests, st.ChatRequests)
	}
	want := map[string]int64{"a": 2, "b": 1, "e": 1, "c": 1}
	if len(st.Models) != len(want) {
		t.Errorf("models = %v, want %v", st.Models, want)
	}
	for m, n := range want {
		if st.Models[m] != n {
			t.Errorf("models[%q] = %d, want %d", m, st.Models[m], n)
		}
	}
	if st.LastAuthorization != "Bearer k1" || st.LastHeader.Get("X-Trace") != "t1" || string(st.LastBody) != last {
		t.Errorf("last = %q %v %q", st.LastAuthorization, st.LastHeader, st.LastBody)
	}

	st.LastBody[0] = 'X' // a snapshot must not alias the server's copy
	if string(s.Stats().LastBody) != last {
		t.Error("Stats returned an aliased body")
	}
	s.ResetStats()
	if st := s.Stats(); st.Requests != 0 || len(st.Models) != 0 {
		t.Errorf("after reset: %+v", st)
	}
}

func TestConcurrentStreams(t *testing.T) {
	s := start(t, upstreamsim.Options{Chunks: 20})
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			resp, err := http.Post(s.URL()+"/chat/completions", "application/json",
				strings.NewReader(`{"model":"m","stream":true}`))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			events, err := readEvents(resp)
			if err == nil && (len(events) != 23 || events[22] != "[DONE]") {
				err = errors.New("incomplete stream")
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := s.Stats(); st.ChatRequests != n || st.Models["m"] != n {
		t.Errorf("stats = %+v", st)
	}
}

func TestModels(t *testing.T) {
	type list struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	for _, tc := range []struct {
		name   string
		models []string
		want   []string
	}{
		{"default", nil, []string{upstreamsim.DefaultModel}},
		{"configured", []string{"m1", "m2"}, []string{"m1", "m2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, upstreamsim.Options{Name: "prov", Models: tc.models})
			l := decode[list](t, do(t, "GET", s.URL()+"/models", "", nil))
			if l.Object != "list" || len(l.Data) != len(tc.want) {
				t.Fatalf("list = %+v", l)
			}
			for i, m := range l.Data {
				if m.ID != tc.want[i] || m.Object != "model" || m.OwnedBy != "prov" {
					t.Errorf("data[%d] = %+v", i, m)
				}
			}
		})
	}
}

func TestEmbeddings(t *testing.T) {
	s := start(t, upstreamsim.Options{})
	type result struct {
		Object string `json:"object"`
		Model  string `json:"model"`
		Data   []struct {
			Object    string          `json:"object"`
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	embed := func(body string) result {
		resp := do(t, "POST", s.URL()+"/embeddings", body, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d", resp.StatusCode)
		}
		return decode[result](t, resp)
	}

	r := embed(`{"model":"emb","input":["a b","c","a b"],"dimensions":16}`)
	if r.Object != "list" || r.Model != "emb" || len(r.Data) != 3 || r.Usage.PromptTokens != 5 {
		t.Fatalf("result = %+v", r)
	}
	var vecs [3][]float32
	for i, d := range r.Data {
		if d.Object != "embedding" || d.Index != i {
			t.Errorf("data[%d] = %+v", i, d)
		}
		if err := json.Unmarshal(d.Embedding, &vecs[i]); err != nil || len(vecs[i]) != 16 {
			t.Fatalf("embedding %d: %s (%v)", i, d.Embedding, err)
		}
	}
	if string(r.Data[0].Embedding) != string(r.Data[2].Embedding) {
		t.Error("equal inputs embedded differently")
	}
	if string(r.Data[0].Embedding) == string(r.Data[1].Embedding) {
		t.Error("different inputs embedded equally")
	}

	r = embed(`{"model":"emb","input":"one","encoding_format":"base64"}`)
	var b64 string
	if err := json.Unmarshal(r.Data[0].Embedding, &b64); err != nil {
		t.Fatal(err)
	}
	if raw, err := base64.StdEncoding.DecodeString(b64); err != nil || len(raw) != 4*8 {
		t.Errorf("base64 embedding: %d bytes, %v", len(raw), err)
	}

	wantError(t, do(t, "POST", s.URL()+"/embeddings", `{"model":"emb"}`, nil), http.StatusBadRequest, "")
}

func TestCompletions(t *testing.T) {
	s := start(t, upstreamsim.Options{Name: "legacy"})
	c := decode[chatCompletion](t, do(t, "POST", s.URL()+"/completions", `{"model":"davinci","prompt":"once upon"}`, nil))
	if c.Object != "text_completion" || c.Model != "davinci" || len(c.Choices) != 1 ||
		c.Choices[0].Text != "hello from legacy: davinci" || c.Usage == nil || c.Usage.PromptTokens != 2 {
		t.Errorf("completion = %+v", c)
	}

	events, err := readEvents(do(t, "POST", s.URL()+"/completions", `{"model":"davinci","prompt":"x","stream":true}`, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != upstreamsim.DefaultChunks+2 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("events = %q", events)
	}
	var text strings.Builder
	for _, ev := range events[:len(events)-1] {
		var c chatCompletion
		if err := json.Unmarshal([]byte(ev), &c); err != nil || c.Object != "text_completion" {
			t.Fatalf("event %q: %v", ev, err)
		}
		text.WriteString(c.Choices[0].Text)
	}
	if text.String() != "hello from legacy: davinci" {
		t.Errorf("streamed text = %q", text.String())
	}
}

func TestRequestErrors(t *testing.T) {
	s := start(t, upstreamsim.Options{})
	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
	}{
		{"invalid json", "POST", "/v1/chat/completions", `{"model":`, nil, http.StatusBadRequest},
		{"missing model", "POST", "/v1/chat/completions", `{"messages":[]}`, nil, http.StatusBadRequest},
		{"unknown path", "POST", "/v1/nope", `{}`, nil, http.StatusNotFound},
		{"unknown root path", "GET", "/", "", nil, http.StatusNotFound},
		{"wrong method", "GET", "/v1/chat/completions", "", nil, http.StatusMethodNotAllowed},
		{"bad override", "POST", "/v1/chat/completions", chatBody, map[string]string{"X-Sim-Chunks": "many"}, http.StatusBadRequest},
		{"bad fail status", "POST", "/v1/chat/completions", chatBody, map[string]string{"X-Sim-Fail-Status": "42"}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, do(t, tc.method, "http://"+s.Addr()+tc.path, tc.body, tc.header), tc.status, "")
		})
	}
}

// TestLatency only checks lower bounds, which timers guarantee.
func TestLatency(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   upstreamsim.Options
		header map[string]string
		min    time.Duration
	}{
		{"options", upstreamsim.Options{Latency: 50 * time.Millisecond}, nil, 50 * time.Millisecond},
		{"header", upstreamsim.Options{}, map[string]string{"X-Sim-Latency-Ms": "50"}, 50 * time.Millisecond},
		{"chunk delay", upstreamsim.Options{Chunks: 2}, map[string]string{"X-Sim-Chunk-Delay-Ms": "20"}, 4 * 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.opts)
			begin := time.Now()
			if _, err := readEvents(do(t, "POST", s.URL()+"/chat/completions", `{"model":"m","stream":true}`, tc.header)); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(begin); d < tc.min {
				t.Errorf("took %v, want at least %v", d, tc.min)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	s := upstreamsim.New(upstreamsim.Options{})
	if s.Addr() != "" {
		t.Errorf("Addr before Start = %q", s.Addr())
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start succeeded")
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/v1") {
		t.Errorf("URL = %q", s.URL())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("Start after Close succeeded")
	}
}
