package upstreamsim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// response is the part of OpenAI's Response object the tests look at.
type response struct {
	ID                 string          `json:"id"`
	Object             string          `json:"object"`
	CreatedAt          int64           `json:"created_at"`
	Status             string          `json:"status"`
	Background         bool            `json:"background"`
	Error              json.RawMessage `json:"error"`
	Instructions       json.RawMessage `json:"instructions"`
	Model              string          `json:"model"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Store              bool            `json:"store"`
	ParallelToolCalls  bool            `json:"parallel_tool_calls"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Tools              json.RawMessage `json:"tools"`
	Temperature        float64         `json:"temperature"`
	TopP               float64         `json:"top_p"`
	Text               struct {
		Format struct {
			Type string `json:"type"`
		} `json:"format"`
	} `json:"text"`
	Output []struct {
		ID      string `json:"id"`
		Type    string `json:"type"`
		Status  string `json:"status"`
		Role    string `json:"role"`
		Content []struct {
			Type        string `json:"type"`
			Text        string `json:"text"`
			Annotations []any  `json:"annotations"`
		} `json:"content"`
		CallID    string `json:"call_id"`
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"output"`
	Usage *struct {
		InputTokens        int `json:"input_tokens"`
		InputTokensDetails struct {
			CachedTokens *int `json:"cached_tokens"`
		} `json:"input_tokens_details"`
		OutputTokens        int `json:"output_tokens"`
		OutputTokensDetails struct {
			ReasoningTokens *int `json:"reasoning_tokens"`
		} `json:"output_tokens_details"`
		TotalTokens int `json:"total_tokens"`
	} `json:"usage"`
}

// text is the response's output text, "" without a message.
func (r response) text() string {
	var b strings.Builder
	for _, o := range r.Output {
		for _, c := range o.Content {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// fullError is an OpenAI error with all four fields, null ones as nil.
type fullError struct {
	Error struct {
		Message string  `json:"message"`
		Type    *string `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

// wantFullError checks status, message, param and code ("<null>" for null).
func wantFullError(t *testing.T, resp *http.Response, status int, msg, param, code string) {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d: %s", resp.StatusCode, status, b)
	}
	var e fullError
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if e.Error.Message != msg || str(e.Error.Type) != "invalid_request_error" || str(e.Error.Param) != param || str(e.Error.Code) != code {
		t.Errorf("error = %s, want message %q param %s code %s", b, msg, param, code)
	}
}

// create posts body to the simulator's /v1/responses and decodes a 200 answer.
func create(t *testing.T, s *upstreamsim.Server, body string, header map[string]string) response {
	t.Helper()
	resp := do(t, "POST", s.URL()+"/responses", body, header)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status = %d: %s", resp.StatusCode, b)
	}
	return decode[response](t, resp)
}

func TestResponsesCreate(t *testing.T) {
	const weather = `{"type":"function","name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}`
	for _, tc := range []struct {
		name, body       string
		wantText         string // "" for a function call
		wantCall         string
		wantInput        int
		wantInstructions string
	}{
		{name: "string input", body: `{"model":"gpt-x","input":"say hi to me"}`,
			wantText: "Hello from alpha (turn 1)", wantInput: 4, wantInstructions: "null"},
		{name: "instructions", body: `{"model":"gpt-x","input":"hi","instructions":"be brief"}`,
			wantText: "Hello from alpha (turn 1)", wantInput: 3, wantInstructions: `"be brief"`},
		{name: "content parts", body: `{"model":"gpt-x","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"one two"},{"type":"input_text","text":"three"}]}]}`,
			wantText: "Hello from alpha (turn 1)", wantInput: 3, wantInstructions: "null"},
		{name: "replayed history counts turns", body: `{"model":"gpt-x","store":false,"input":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"},{"role":"assistant","content":[{"type":"output_text","text":"d"}]},{"role":"user","content":"e"}]}`,
			wantText: "Hello from alpha (turn 3)", wantInput: 5, wantInstructions: "null"},
		{name: "function call", body: `{"model":"gpt-x","input":"weather?","tools":[` + weather + `]}`,
			wantCall: "weather", wantInput: 1, wantInstructions: "null"},
		{name: "tool_choice none", body: `{"model":"gpt-x","input":"weather?","tool_choice":"none","tools":[` + weather + `]}`,
			wantText: "Hello from alpha (turn 1)", wantInput: 1, wantInstructions: "null"},
		{name: "named tool", body: `{"model":"gpt-x","input":"x","tool_choice":{"type":"function","name":"b"},"tools":[{"type":"web_search_preview"},{"type":"function","name":"a"},{"type":"function","name":"b"}]}`,
			wantCall: "b", wantInput: 1, wantInstructions: "null"},
		{name: "built-in tools only", body: `{"model":"gpt-x","input":"x","tools":[{"type":"web_search_preview"}]}`,
			wantText: "Hello from alpha (turn 1)", wantInput: 1, wantInstructions: "null"},
		{name: "function call output", body: `{"model":"gpt-x","store":false,"input":[{"role":"user","content":"weather?"},{"type":"function_call","call_id":"c1","name":"weather","arguments":"{\"city\":\"sim\"}"},{"type":"function_call_output","call_id":"c1","output":"rainy"}],"tools":[` + weather + `]}`,
			wantText: "Hello from alpha (turn 2); tool result: rainy", wantInput: 3, wantInstructions: "null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, upstreamsim.Options{Name: "alpha"})
			resp := do(t, "POST", s.URL()+"/responses", tc.body, nil)
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status = %d: %s", resp.StatusCode, b)
			}
			if resp.Header.Get("X-Sim-Name") != "alpha" || !strings.HasPrefix(resp.Header.Get("X-Request-Id"), "req_") {
				t.Errorf("headers = %v", resp.Header)
			}
			r := decode[response](t, resp)
			if !strings.HasPrefix(r.ID, "resp_") || r.Object != "response" || r.CreatedAt == 0 || r.Status != "completed" ||
				r.Model != "gpt-x" || r.PreviousResponseID != nil || r.Store == strings.Contains(tc.body, `"store":false`) ||
				string(r.Error) != "null" || string(r.Instructions) != tc.wantInstructions {
				t.Errorf("envelope = %+v", r)
			}
			if !r.ParallelToolCalls || r.Temperature != 1 || r.TopP != 1 || r.Text.Format.Type != "text" || !json.Valid(r.Tools) {
				t.Errorf("echo fields = %+v", r)
			}
			if len(r.Output) != 1 {
				t.Fatalf("output = %+v", r.Output)
			}
			out := r.Output[0]
			output := 0
			if tc.wantCall != "" {
				if out.Type != "function_call" || !strings.HasPrefix(out.ID, "fc_") || !strings.HasPrefix(out.CallID, "call_") ||
					out.Name != tc.wantCall || out.Status != "completed" || !json.Valid([]byte(out.Arguments)) {
					t.Errorf("function call = %+v", out)
				}
				output = len(strings.Fields(out.Arguments)) + 1
			} else {
				if out.Type != "message" || !strings.HasPrefix(out.ID, "msg_") || out.Role != "assistant" || out.Status != "completed" ||
					len(out.Content) != 1 || out.Content[0].Type != "output_text" || out.Content[0].Annotations == nil {
					t.Errorf("message = %+v", out)
				}
				if r.text() != tc.wantText {
					t.Errorf("text = %q, want %q", r.text(), tc.wantText)
				}
				output = len(strings.Fields(tc.wantText))
			}
			u := r.Usage
			if u == nil || u.InputTokens != tc.wantInput || u.OutputTokens != output || u.TotalTokens != tc.wantInput+output ||
				u.InputTokensDetails.CachedTokens == nil || u.OutputTokensDetails.ReasoningTokens == nil {
				t.Errorf("usage = %+v, want input %d output %d", u, tc.wantInput, output)
			}
		})
	}
}

func TestResponsesEchoes(t *testing.T) {
	s := start(t, upstreamsim.Options{})
	r := create(t, s, `{"model":"m","input":"x","store":false,"temperature":0.5,"top_p":0.25,"parallel_tool_calls":false,`+
		`"tool_choice":"required","text":{"format":{"type":"json_object"}},"max_output_tokens":64,"metadata":{"k":"v"}}`, nil)
	if r.Store || r.Temperature != 0.5 || r.TopP != 0.25 || r.ParallelToolCalls || string(r.ToolChoice) != `"required"` ||
		r.Text.Format.Type != "json_object" || string(r.Tools) != "[]" {
		t.Errorf("echo = %+v", r)
	}
}

// TestResponsesAffinity shows that two simulators are two provider accounts: each
// continues its own conversations and refuses the other's previous_response_id.
func TestResponsesAffinity(t *testing.T) {
	a := start(t, upstreamsim.Options{Name: "a"})
	b := start(t, upstreamsim.Options{Name: "b"})

	first := create(t, a, `{"model":"m","input":"one two three"}`, nil)
	if first.text() != "Hello from a (turn 1)" {
		t.Fatalf("first = %q", first.text())
	}
	second := create(t, a, `{"model":"m","input":"four","previous_response_id":"`+first.ID+`"}`, nil)
	if second.text() != "Hello from a (turn 2)" || second.PreviousResponseID == nil || *second.PreviousResponseID != first.ID {
		t.Errorf("second = %q (previous %v)", second.text(), second.PreviousResponseID)
	}
	// The earlier turn is context: its input and output count again, as cached input.
	context := first.Usage.TotalTokens
	if u := second.Usage; u.InputTokens != context+1 || *u.InputTokensDetails.CachedTokens != context {
		t.Errorf("second usage = %+v, want input %d with %d cached", u, context+1, context)
	}
	third := create(t, a, `{"model":"m","input":"five","previous_response_id":"`+second.ID+`"}`, nil)
	if third.text() != "Hello from a (turn 3)" {
		t.Errorf("third = %q", third.text())
	}

	for _, id := range []string{first.ID, second.ID} {
		wantFullError(t, do(t, "POST", b.URL()+"/responses", `{"model":"m","input":"x","previous_response_id":"`+id+`"}`, nil),
			http.StatusBadRequest, "Previous response with id '"+id+"' not found.", "previous_response_id", "previous_response_not_found")
		wantFullError(t, do(t, "GET", b.URL()+"/responses/"+id, "", nil),
			http.StatusNotFound, "Response with id '"+id+"' not found.", "<null>", "<null>")
	}
	// A response that was not stored cannot be continued, even where it was made.
	unstored := create(t, a, `{"model":"m","input":"x","store":false}`, nil)
	wantFullError(t, do(t, "POST", a.URL()+"/responses", `{"model":"m","input":"x","previous_response_id":"`+unstored.ID+`"}`, nil),
		http.StatusBadRequest, "Previous response with id '"+unstored.ID+"' not found.", "previous_response_id", "previous_response_not_found")
	wantFullError(t, do(t, "GET", a.URL()+"/responses/"+unstored.ID, "", nil),
		http.StatusNotFound, "Response with id '"+unstored.ID+"' not found.", "<null>", "<null>")

	// Ids never collide across instances, or a gateway could not tell them apart.
	if other := create(t, b, `{"model":"m","input":"one two three"}`, nil); other.ID == first.ID || other.Output[0].ID == first.Output[0].ID {
		t.Errorf("instances share ids: %s", other.ID)
	}
	if st := a.Stats(); st.ResponsesRequests != 5 || st.ChatRequests != 0 || st.Models["m"] != 5 {
		t.Errorf("a stats = %+v", st)
	}
}

type inputItems struct {
	Object  string            `json:"object"`
	Data    []json.RawMessage `json:"data"`
	FirstID *string           `json:"first_id"`
	LastID  *string           `json:"last_id"`
	HasMore bool              `json:"has_more"`
}

func (l inputItems) ids(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, d := range l.Data {
		var it struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(d, &it); err != nil || it.ID == "" {
			t.Fatalf("item without id: %s", d)
		}
		ids = append(ids, it.ID)
	}
	return ids
}

func TestResponsesStore(t *testing.T) {
	s := start(t, upstreamsim.Options{Name: "st"})
	r := create(t, s, `{"model":"m","input":[{"role":"developer","content":"rules"},{"role":"user","content":[{"type":"input_text","text":"q"}]},`+
		`{"type":"function_call","id":"fc_client","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"42"}]}`, nil)
	base := s.URL() + "/responses/" + r.ID

	got := decode[response](t, do(t, "GET", base, "", nil))
	if got.ID != r.ID || got.Status != "completed" || got.text() != r.text() || got.Usage.TotalTokens != r.Usage.TotalTokens {
		t.Errorf("retrieved %+v, want %+v", got, r)
	}

	all := decode[inputItems](t, do(t, "GET", base+"/input_items", "", nil))
	ids := all.ids(t)
	if all.Object != "list" || len(ids) != 4 || all.HasMore || *all.FirstID != ids[0] || *all.LastID != ids[3] || ids[1] != "fc_client" {
		t.Fatalf("input items = %+v (ids %v)", all, ids)
	}
	// Newest first by default; the developer message came first.
	var first struct {
		Type    string `json:"type"`
		Role    string `json:"role"`
		Content []struct {
			Type, Text string
		} `json:"content"`
	}
	if err := json.Unmarshal(all.Data[3], &first); err != nil || first.Type != "message" || first.Role != "developer" ||
		len(first.Content) != 1 || first.Content[0].Type != "input_text" || first.Content[0].Text != "rules" {
		t.Errorf("oldest item = %s", all.Data[3])
	}
	for _, tc := range []struct {
		query string
		want  []string
		more  bool
	}{
		{"?order=asc", []string{ids[3], ids[2], ids[1], ids[0]}, false},
		{"?order=asc&limit=2", []string{ids[3], ids[2]}, true},
		{"?order=asc&limit=2&after=" + ids[2], []string{ids[1], ids[0]}, false},
		{"?limit=1&after=" + ids[0], []string{ids[1]}, true},
	} {
		l := decode[inputItems](t, do(t, "GET", base+"/input_items"+tc.query, "", nil))
		if got := l.ids(t); strings.Join(got, ",") != strings.Join(tc.want, ",") || l.HasMore != tc.more {
			t.Errorf("%s: ids %v more %v, want %v %v", tc.query, got, l.HasMore, tc.want, tc.more)
		}
	}
	wantFullError(t, do(t, "GET", base+"/input_items?limit=0", "", nil), http.StatusBadRequest,
		"Invalid 'limit': integer below minimum value or above maximum value. Expected a value between 1 and 100.", "limit", "integer_out_of_range")

	wantFullError(t, do(t, "POST", base+"/cancel", "", nil), http.StatusBadRequest,
		"Only responses created with background set to true can be cancelled.", "<null>", "<null>")

	resp := do(t, "DELETE", base, "", nil)
	var del struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Deleted bool   `json:"deleted"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&del) != nil || del.ID != r.ID || del.Object != "response.deleted" || !del.Deleted {
		t.Errorf("delete = %d %+v", resp.StatusCode, del)
	}
	notFound := "Response with id '" + r.ID + "' not found."
	for _, req := range [][2]string{{"GET", base}, {"DELETE", base}, {"GET", base + "/input_items"}, {"POST", base + "/cancel"}} {
		wantFullError(t, do(t, req[0], req[1], "", nil), http.StatusNotFound, notFound, "<null>", "<null>")
	}
	wantFullError(t, do(t, "POST", s.URL()+"/responses", `{"model":"m","input":"x","previous_response_id":"`+r.ID+`"}`, nil),
		http.StatusBadRequest, "Previous response with id '"+r.ID+"' not found.", "previous_response_id", "previous_response_not_found")
}

func TestResponsesBackground(t *testing.T) {
	s := start(t, upstreamsim.Options{Name: "bg"})
	cancel := func(id string) *http.Response { return do(t, "POST", s.URL()+"/responses/"+id+"/cancel", "", nil) }

	// Cancelled while queued.
	r := create(t, s, `{"model":"m","input":"x","background":true}`, nil)
	if r.Status != "queued" || !r.Background || len(r.Output) != 0 || r.Usage != nil {
		t.Fatalf("background create = %+v", r)
	}
	for range 2 { // cancelling again returns the cancelled response
		resp := cancel(r.ID)
		if c := decode[response](t, resp); resp.StatusCode != http.StatusOK || c.ID != r.ID || c.Status != "cancelled" {
			t.Errorf("cancel = %d %+v", resp.StatusCode, c)
		}
	}
	if g := decode[response](t, do(t, "GET", s.URL()+"/responses/"+r.ID, "", nil)); g.Status != "cancelled" || len(g.Output) != 0 {
		t.Errorf("cancelled response = %+v", g)
	}

	// Polled to completion, then too late to cancel.
	r = create(t, s, `{"model":"m","input":"x","background":true}`, nil)
	if g := decode[response](t, do(t, "GET", s.URL()+"/responses/"+r.ID, "", nil)); g.Status != "completed" || g.text() != "Hello from bg (turn 1)" || g.Usage == nil {
		t.Errorf("polled response = %+v", g)
	}
	wantFullError(t, cancel(r.ID), http.StatusBadRequest, "Cannot cancel a response with status 'completed'.", "<null>", "<null>")

	wantFullError(t, do(t, "POST", s.URL()+"/responses", `{"model":"m","input":"x","background":true,"store":false}`, nil), http.StatusBadRequest,
		"Background responses must be stored: 'background': true requires 'store' to be true.", "background", "<null>")
}

// respEvent is a Responses stream event, as far as the tests read it.
type respEvent struct {
	Type           string    `json:"type"`
	SequenceNumber *int      `json:"sequence_number"`
	ItemID         string    `json:"item_id"`
	OutputIndex    *int      `json:"output_index"`
	Delta          string    `json:"delta"`
	Text           string    `json:"text"`
	Arguments      string    `json:"arguments"`
	Response       *response `json:"response"`
	Item           *struct {
		ID     string `json:"id"`
		Type   string `json:"type"`
		Status string `json:"status"`
	} `json:"item"`
}

func respEvents(t *testing.T, resp *http.Response) []respEvent {
	t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	names, datas := sseEvents(t, resp.Body)
	events := make([]respEvent, len(datas))
	for i, d := range datas {
		if err := json.Unmarshal([]byte(d), &events[i]); err != nil {
			t.Fatalf("event %d %q: %v", i, d, err)
		}
		if ev := events[i]; ev.Type != names[i] || ev.SequenceNumber == nil || *ev.SequenceNumber != i {
			t.Errorf("event %d is %q with data %s", i, names[i], d)
		}
	}
	return events
}

func eventTypes(events []respEvent) []string {
	types := make([]string, len(events))
	for i, ev := range events {
		types[i] = ev.Type
	}
	return types
}

func TestResponsesStream(t *testing.T) {
	text := func(chunks int) []string {
		types := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
		for range chunks {
			types = append(types, "response.output_text.delta")
		}
		return append(types, "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed")
	}
	call := []string{"response.created", "response.in_progress", "response.output_item.added", "response.function_call_arguments.delta",
		"response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done", "response.completed"}
	for _, tc := range []struct {
		name   string
		opts   upstreamsim.Options
		header map[string]string
		body   string
		want   []string
	}{
		{"default chunks", upstreamsim.Options{Name: "str"}, nil, `{"model":"m","input":"hi","stream":true}`, text(upstreamsim.DefaultChunks)},
		{"one chunk", upstreamsim.Options{Name: "str", Chunks: 1}, nil, `{"model":"m","input":"hi","stream":true}`, text(1)},
		{"header chunks", upstreamsim.Options{Name: "str"}, map[string]string{"X-Sim-Chunks": "7"}, `{"model":"m","input":"hi","stream":true}`, text(7)},
		{"function call", upstreamsim.Options{Name: "str"}, nil,
			`{"model":"m","input":"hi","stream":true,"tools":[{"type":"function","name":"f","parameters":{"required":["a"],"properties":{"a":{"type":"string"}}}}]}`, call},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.opts)
			events := respEvents(t, do(t, "POST", s.URL()+"/responses", tc.body, tc.header))
			if got := eventTypes(events); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("events\n%v\nwant\n%v", got, tc.want)
			}
			created, done := events[0].Response, events[len(events)-1].Response
			if created == nil || created.Status != "in_progress" || len(created.Output) != 0 || created.Usage != nil {
				t.Errorf("response.created = %+v", created)
			}
			if done == nil || done.ID != created.ID || done.Status != "completed" || done.Usage == nil || done.Usage.TotalTokens == 0 || len(done.Output) != 1 {
				t.Fatalf("response.completed = %+v", done)
			}
			added, item := events[2].Item, done.Output[0]
			if added == nil || added.ID != item.ID || added.Status != "in_progress" || events[len(events)-2].Item.Status != "completed" {
				t.Errorf("output item events = %+v, %+v", added, events[len(events)-2].Item)
			}
			var deltas strings.Builder
			for _, ev := range events[3 : len(events)-3] {
				if ev.ItemID != item.ID || ev.OutputIndex == nil || *ev.OutputIndex != 0 {
					t.Errorf("event %s is about item %q", ev.Type, ev.ItemID)
				}
				if strings.HasSuffix(ev.Type, ".delta") {
					deltas.WriteString(ev.Delta)
				}
			}
			if item.Type == "function_call" {
				if deltas.String() != item.Arguments || events[5].Arguments != item.Arguments || item.Arguments != `{"a":"sim"}` {
					t.Errorf("arguments streamed %q, done %q, final %q", deltas.String(), events[5].Arguments, item.Arguments)
				}
				return
			}
			if deltas.String() != "Hello from str (turn 1)" || done.text() != deltas.String() || events[len(events)-4].Text != deltas.String() {
				t.Errorf("streamed %q, final %q", deltas.String(), done.text())
			}
			// The stream's response is stored like a buffered one.
			if g := decode[response](t, do(t, "GET", s.URL()+"/responses/"+done.ID, "", nil)); g.text() != done.text() {
				t.Errorf("stored %+v", g)
			}
		})
	}

	t.Run("chunk delay", func(t *testing.T) {
		s := start(t, upstreamsim.Options{Chunks: 2, ChunkDelay: 10 * time.Millisecond})
		begin := time.Now()
		events := respEvents(t, do(t, "POST", s.URL()+"/responses", `{"model":"m","input":"hi","stream":true}`, nil))
		if d, min := time.Since(begin), time.Duration(len(events)-1)*10*time.Millisecond; d < min {
			t.Errorf("took %v, want at least %v", d, min)
		}
	})
}

func TestResponsesFailAfterChunks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   upstreamsim.Options
		header map[string]string
		want   int
	}{
		{"options", upstreamsim.Options{FailAfterChunks: 4}, nil, 4},
		{"header", upstreamsim.Options{}, map[string]string{"X-Sim-Fail-After-Chunks": "1"}, 1},
		// Past the end: everything but response.completed arrives, then the cut.
		{"beyond stream", upstreamsim.Options{Chunks: 2, FailAfterChunks: 100}, nil, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.opts)
			resp := do(t, "POST", s.URL()+"/responses", `{"model":"m","input":"hi","stream":true}`, tc.header)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d", resp.StatusCode)
			}
			events, err := readEvents(resp)
			if err == nil {
				t.Error("stream ended cleanly, want a broken body")
			}
			if len(events) != tc.want {
				t.Errorf("got %d events, want %d", len(events), tc.want)
			}
			var first respEvent
			if len(events) == 0 || json.Unmarshal([]byte(events[0]), &first) != nil || first.Type != "response.created" {
				t.Fatalf("events = %q", events)
			}
			for _, ev := range events {
				if strings.Contains(ev, `"response.completed"`) {
					t.Error("a cut stream completed")
				}
			}
			// What a later retrieval finds is a response that failed.
			if g := decode[response](t, do(t, "GET", s.URL()+"/responses/"+first.Response.ID, "", nil)); g.Status != "failed" || !strings.Contains(string(g.Error), "server_error") {
				t.Errorf("stored = %+v", g)
			}
		})
	}
}

func TestResponsesAdmission(t *testing.T) {
	body := `{"model":"m","input":"hi"}`
	for _, tc := range []struct {
		name         string
		opts         upstreamsim.Options
		method, path string
		body         string
		header       map[string]string
		status       int
		code         string
	}{
		{"auth", upstreamsim.Options{APIKey: "k"}, "POST", "/v1/responses", body, nil, 401, "invalid_api_key"},
		{"auth on retrieve", upstreamsim.Options{APIKey: "k"}, "GET", "/v1/responses/resp_x", "", nil, 401, "invalid_api_key"},
		{"fail status", upstreamsim.Options{FailStatus: 503}, "POST", "/v1/responses", body, nil, 503, ""},
		{"fail status beats bad body", upstreamsim.Options{FailStatus: 502}, "POST", "/v1/responses", "{", nil, 502, ""},
		{"fail status on retrieve", upstreamsim.Options{}, "GET", "/v1/responses/resp_x", "", map[string]string{"X-Sim-Fail-Status": "429"}, 429, "rate_limit_exceeded"},
		{"fail status on delete", upstreamsim.Options{FailStatus: 500}, "DELETE", "/v1/responses/resp_x", "", nil, 500, ""},
		{"unknown model", upstreamsim.Options{Models: []string{"other"}}, "POST", "/v1/responses", body, nil, 404, "model_not_found"},
		{"missing model", upstreamsim.Options{}, "POST", "/v1/responses", `{"input":"hi"}`, nil, 400, ""},
		{"bad json", upstreamsim.Options{}, "POST", "/v1/responses", `{"model":`, nil, 400, ""},
		{"missing input", upstreamsim.Options{}, "POST", "/v1/responses", `{"model":"m"}`, nil, 400, "missing_required_parameter"},
		{"input object", upstreamsim.Options{}, "POST", "/v1/responses", `{"model":"m","input":{"role":"user"}}`, nil, 400, "invalid_type"},
		{"input item not an object", upstreamsim.Options{}, "POST", "/v1/responses", `{"model":"m","input":["hi"]}`, nil, 400, "invalid_type"},
		{"bad role", upstreamsim.Options{}, "POST", "/v1/responses", `{"model":"m","input":[{"role":"robot","content":"x"}]}`, nil, 400, "invalid_value"},
		{"item without type", upstreamsim.Options{}, "POST", "/v1/responses", `{"model":"m","input":[{"content":"x"}]}`, nil, 400, "missing_required_parameter"},
		{"wrong method", upstreamsim.Options{}, "GET", "/v1/responses", "", nil, 405, ""},
		{"wrong method by id", upstreamsim.Options{}, "POST", "/v1/responses/resp_x", "", nil, 405, ""},
		{"wrong method cancel", upstreamsim.Options{}, "GET", "/v1/responses/resp_x/cancel", "", nil, 405, ""},
		{"unknown sub-route", upstreamsim.Options{}, "GET", "/v1/responses/resp_x/nope", "", nil, 404, ""},
		{"empty id", upstreamsim.Options{}, "GET", "/v1/responses/", "", nil, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.opts)
			wantError(t, do(t, tc.method, "http://"+s.Addr()+tc.path, tc.body, tc.header), tc.status, tc.code)
		})
	}

	t.Run("latency and stats", func(t *testing.T) {
		s := start(t, upstreamsim.Options{APIKey: "k", Latency: 30 * time.Millisecond})
		auth := map[string]string{"Authorization": "Bearer k"}
		begin := time.Now()
		r := create(t, s, `{"model":"m1","input":"hi"}`, auth)
		if d := time.Since(begin); d < 30*time.Millisecond {
			t.Errorf("took %v", d)
		}
		do(t, "POST", s.URL()+"/responses", `{"model":"m2","input":"hi"}`, map[string]string{"api-key": "k", "X-Sim-Fail-Status": "500"})
		do(t, "GET", s.URL()+"/responses/"+r.ID, "", auth)
		do(t, "GET", s.URL()+"/responses/"+r.ID+"/input_items", "", auth)
		do(t, "POST", "http://"+s.Addr()+"/responses", `{"model":"m1","input":"hi"}`, auth) // without /v1, like the chat route
		st := s.Stats()
		if st.Requests != 5 || st.ResponsesRequests != 3 || st.ChatRequests != 0 || st.Models["m1"] != 2 || st.Models["m2"] != 1 {
			t.Errorf("stats = %+v", st)
		}
		if st.LastURI != "/responses" || !strings.Contains(string(st.LastBody), `"m1"`) {
			t.Errorf("last = %q %s", st.LastURI, st.LastBody)
		}
	})
}

func TestResponsesAzure(t *testing.T) {
	s := start(t, upstreamsim.Options{Name: "az", APIKey: "k", Models: []string{"dep"}, Chunks: 2})
	key := map[string]string{"api-key": "k"}
	body := `{"model":"dep","input":"hi"}`
	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		want                     []string
	}{
		{"v1", "POST", "/openai/v1/responses", body, key, 200, []string{`"object":"response"`, `"model":"dep"`, `"text":"Hello from az (turn 1)"`}},
		{"v1 with api-version", "POST", "/openai/v1/responses?api-version=preview", body, key, 200, []string{`"status":"completed"`}},
		{"preview", "POST", "/openai/responses?api-version=2025-04-01-preview", body, key, 200, []string{`"status":"completed"`}},
		{"preview needs api-version", "POST", "/openai/responses", body, key, 404, []string{`"code":"404"`}},
		{"bearer is not Azure auth", "POST", "/openai/v1/responses", body, map[string]string{"Authorization": "Bearer k"}, 401, []string{`"code":"401"`}},
		{"unknown deployment", "POST", "/openai/v1/responses", `{"model":"nope","input":"hi"}`, key, 404, []string{`"code":"DeploymentNotFound"`}},
		{"injected 429", "POST", "/openai/v1/responses", body, map[string]string{"api-key": "k", "X-Sim-Fail-Status": "429"}, 429, []string{`"code":"429"`}},
		{"injected 500 on retrieve", "GET", "/openai/v1/responses/resp_x", "", map[string]string{"api-key": "k", "X-Sim-Fail-Status": "500"}, 500, []string{`"code":"InternalServerError"`}},
		{"not found", "GET", "/openai/v1/responses/resp_x", "", key, 404, []string{`"message":"Response with id 'resp_x' not found."`}},
		{"wrong method", "PUT", "/openai/v1/responses", body, key, 405, []string{`"code":"405"`}},
		{"unknown sub-route", "GET", "/openai/v1/responses/resp_x/nope", "", key, 404, []string{`"code":"404"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, tc.method, s.AzureURL()+tc.path, tc.body, tc.header)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if resp.Header.Get("X-Sim-Name") != "az" || !strings.HasPrefix(resp.Header.Get("X-Request-Id"), "req_") {
				t.Errorf("headers = %v", resp.Header)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("body lacks %s: %s", w, b)
				}
			}
		})
	}

	// The stored-response routes, in both forms, and the stream.
	r := decode[response](t, do(t, "POST", s.AzureURL()+"/openai/v1/responses", body, key))
	for _, path := range []string{"/openai/v1/responses/" + r.ID, "/openai/responses/" + r.ID + "?api-version=2025-04-01-preview"} {
		if g := decode[response](t, do(t, "GET", s.AzureURL()+path, "", key)); g.ID != r.ID {
			t.Errorf("GET %s = %+v", path, g)
		}
	}
	l := decode[inputItems](t, do(t, "GET", s.AzureURL()+"/openai/responses/"+r.ID+"/input_items?api-version=2025-04-01-preview", "", key))
	if len(l.Data) != 1 {
		t.Errorf("input items = %+v", l)
	}
	next := decode[response](t, do(t, "POST", s.AzureURL()+"/openai/v1/responses", `{"model":"dep","input":"again","previous_response_id":"`+r.ID+`"}`, key))
	if next.text() != "Hello from az (turn 2)" {
		t.Errorf("next = %q", next.text())
	}
	events := respEvents(t, do(t, "POST", s.AzureURL()+"/openai/v1/responses", `{"model":"dep","input":"hi","stream":true}`, key))
	if len(events) != 10 || events[9].Type != "response.completed" {
		t.Errorf("stream = %v", eventTypes(events))
	}
	wantFullError(t, do(t, "POST", s.AzureURL()+"/openai/v1/responses/"+r.ID+"/cancel", "", key), http.StatusBadRequest,
		"Only responses created with background set to true can be cancelled.", "<null>", "<null>")
	if resp := do(t, "DELETE", s.AzureURL()+"/openai/v1/responses/"+r.ID, "", key); resp.StatusCode != http.StatusOK {
		t.Errorf("delete = %d", resp.StatusCode)
	}
	if st := s.Stats(); st.ResponsesRequests != 10 || st.Models["dep"] != 6 {
		t.Errorf("stats = %+v", st)
	}
}
