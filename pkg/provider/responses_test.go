package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/pkg/sse"
)

// The Responses API translation's golden files live in testdata/responses (TestGolden
// owns testdata/golden): <kind>.<case>.in.{json,sse} → .want.{json,sse}, and for
// chat_to_responses an optional <kind>.<case>.req.json with the client's request that
// the response echoes.

const respGoldenDir = "testdata/responses/"

// respTestID is the response id the golden outputs carry.
const respTestID = "resp_0194f5e0c4b07c2a"

// defaultRespReq is the client request for chat_to_responses cases without a .req.json.
const defaultRespReq = `{"model":"gpt-4o","input":"hi"}`

func respReq(t testing.TB, base string) []byte {
	t.Helper()
	b, err := os.ReadFile(respGoldenDir + base + ".req.json")
	if errors.Is(err, os.ErrNotExist) {
		return []byte(defaultRespReq)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runRespStream feeds an SSE input through a Responses translator the way the proxy
// does and renders a failure (an in-stream error, or a truncated stream) as the
// Responses API's error event, after checking the output's invariants.
func runRespStream(t testing.TB, req, in []byte) []byte {
	t.Helper()
	out, err := feedStream(t, NewChatToResponsesStream(respTestID, req), in, 0)
	checkRespStream(t, out, err == nil)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("stream error is not *Error: %v", err)
		}
		out = appendRespErrorEvent(out, e)
	}
	return out
}

// feedStream runs in through tr, reading it size bytes at a time, and returns the
// output and the error that ended it (ErrTruncated from End included).
func feedStream(t testing.TB, tr StreamTranslator, in []byte, size int) ([]byte, error) {
	r := sse.NewReader(bytes.NewReader(in), size)
	var out []byte
	for {
		name, data, err := r.Next()
		if err == io.EOF {
			return tr.End(out)
		}
		if err != nil {
			t.Fatalf("reading SSE: %v", err)
		}
		if out, err = tr.Event(name, data, out); err != nil {
			return out, err
		}
	}
}

func appendRespErrorEvent(dst []byte, e *Error) []byte {
	dst = append(dst, "event: error\ndata: "...)
	dst = appendJSON(dst, map[string]any{"type": "error", "code": e.Code, "message": e.Message, "param": nil})
	return append(dst, "\n\n"...)
}

// checkRespStream checks a translated stream event by event: "event: <type>" and one
// data line whose type matches, sequence numbers 0, 1, 2…, response.created and
// response.in_progress first, deltas only inside open items and parts, every item
// closed, and (when complete) one final response.completed or response.incomplete.
func checkRespStream(t testing.TB, out []byte, complete bool) {
	t.Helper()
	s := string(out)
	if s == "" {
		if complete {
			t.Fatalf("a complete stream has no events")
		}
		return
	}
	if !strings.HasSuffix(s, "\n\n") {
		t.Fatalf("output does not end with a blank line: %q", s)
	}
	items := map[int]string{} // output_index → item id, while open
	closed := map[int]bool{}
	parts := map[[2]int]bool{} // open content parts
	var types []string
	for i, ev := range strings.Split(strings.TrimSuffix(s, "\n\n"), "\n\n") {
		nameLine, dataLine, ok := strings.Cut(ev, "\n")
		name, ok1 := strings.CutPrefix(nameLine, "event: ")
		data, ok2 := strings.CutPrefix(dataLine, "data: ")
		if !ok || !ok1 || !ok2 || strings.Contains(data, "\n") {
			t.Fatalf("event %d is not event:+data: lines: %q", i, ev)
		}
		var v struct {
			Type         string `json:"type"`
			Seq          *int   `json:"sequence_number"`
			OutputIndex  int    `json:"output_index"`
			ContentIndex int    `json:"content_index"`
			ItemID       string `json:"item_id"`
			Item         *struct {
				ID string `json:"id"`
			} `json:"item"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &v); err != nil || v.Type != name {
			t.Fatalf("event %d: data %q does not match its name %q (%v)", i, data, name, err)
		}
		if v.Seq == nil || *v.Seq != i {
			t.Fatalf("event %d (%s) has sequence_number %v", i, name, v.Seq)
		}
		if v.Error != nil {
			t.Fatalf("event %d has a top-level error member, which the SDKs take for a failure: %s", i, data)
		}
		switch {
		case i == 0 && name != "response.created", i == 1 && name != "response.in_progress":
			t.Fatalf("event %d is %s", i, name)
		}
		if len(types) > 0 {
			if last := types[len(types)-1]; last == "response.completed" || last == "response.incomplete" {
				t.Fatalf("%s after %s", name, last)
			}
		}
		types = append(types, name)
		idx := v.OutputIndex
		switch name {
		case "response.output_item.added":
			if _, open := items[idx]; open || closed[idx] || idx != len(items)+len(closed) {
				t.Fatalf("item %d added out of order", idx)
			}
			items[idx] = v.Item.ID
		case "response.output_item.done":
			if items[idx] != v.Item.ID {
				t.Fatalf("item %d done but not open", idx)
			}
			for k, open := range parts {
				if k[0] == idx && open {
					t.Fatalf("item %d done with part %d open", idx, k[1])
				}
			}
			delete(items, idx)
			closed[idx] = true
		case "response.content_part.added":
			parts[[2]int{idx, v.ContentIndex}] = true
		case "response.content_part.done":
			if !parts[[2]int{idx, v.ContentIndex}] {
				t.Fatalf("part %d/%d done but not open", idx, v.ContentIndex)
			}
			parts[[2]int{idx, v.ContentIndex}] = false
		case "response.output_text.delta", "response.refusal.delta", "response.output_text.done", "response.refusal.done":
			if !parts[[2]int{idx, v.ContentIndex}] || items[idx] != v.ItemID {
				t.Fatalf("%s for part %d/%d that is not open", name, idx, v.ContentIndex)
			}
		case "response.function_call_arguments.delta", "response.function_call_arguments.done":
			if items[idx] != v.ItemID {
				t.Fatalf("%s for item %d that is not open", name, idx)
			}
		}
	}
	if complete {
		if last := types[len(types)-1]; last != "response.completed" && last != "response.incomplete" {
			t.Fatalf("a complete stream ends with %s", last)
		}
		if len(items) > 0 {
			t.Fatalf("items left open: %v", items)
		}
	}
}

// translateResp runs the translation a golden file's name selects.
func translateResp(t *testing.T, name string, in []byte) []byte {
	t.Helper()
	kind, _, _ := strings.Cut(name, ".")
	stream := strings.HasSuffix(name, ".sse")
	base := strings.TrimSuffix(strings.TrimSuffix(name, ".in.json"), ".in.sse")
	var (
		out []byte
		err error
	)
	switch {
	case kind == "responses_to_chat":
		out, err = ResponsesToChatRequest(nil, in)
	case kind == "chat_to_responses" && stream:
		return runRespStream(t, respReq(t, base), in)
	case kind == "chat_to_responses":
		out, err = ChatToResponsesResponse(nil, in, respReq(t, base), respTestID)
	default:
		t.Fatalf("no translation for golden file %s", name)
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !json.Valid(out) {
		t.Fatalf("%s: output is not JSON: %s", name, out)
	}
	var b bytes.Buffer
	_ = json.Indent(&b, out, "", "  ")
	b.WriteByte('\n')
	return b.Bytes()
}

func TestResponsesGolden(t *testing.T) {
	fixedNow(t)
	files, err := filepath.Glob(respGoldenDir + "*.in.*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := translateResp(t, name, in)
			wantFile := strings.Replace(f, ".in.", ".want.", 1)
			if *update {
				if err := os.WriteFile(wantFile, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatalf("%v (run go test -run TestResponsesGolden -update to record it, then review it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s\n--- got ---\n%s\n--- want ---\n%s", name, wantFile, got, want)
			}
		})
	}
}

func TestResponsesToChatRefuses(t *testing.T) {
	for _, tt := range []struct {
		name, body, want string
	}{
		{"not json", `{"model":`, "not a valid Responses API request"},
		{"not an object", `[1]`, "not a valid Responses API request"},
		{"no model", `{"input":"hi"}`, "model: field required"},
		{"no input", `{"model":"m"}`, "input: field required"},
		{"null input", `{"model":"m","input":null}`, "input: field required"},
		{"empty input", `{"model":"m","input":[]}`, "at least one item"},
		{"reasoning only", `{"model":"m","input":[{"type":"reasoning","summary":[]}]}`, "input: no message to send"},
		{"input number", `{"model":"m","input":3}`, "input: must be a string or an array"},
		{"previous_response_id", `{"model":"m","input":"hi","previous_response_id":"resp_1"}`, "send the whole conversation as input"},
		{"conversation", `{"model":"m","input":"hi","conversation":"conv_1"}`, "conversation:"},
		{"conversation object", `{"model":"m","input":"hi","conversation":{"id":"conv_1"}}`, "stores no conversations"},
		{"prompt", `{"model":"m","input":"hi","prompt":{"id":"pmpt_1"}}`, "stored prompt templates"},
		{"background", `{"model":"m","input":"hi","background":true}`, "background responses are not available"},
		{"web_search", `{"model":"m","input":"hi","tools":[{"type":"web_search"}]}`, `tools[0]: tool type "web_search" is not available: this backend serves the Responses API through translation to Chat Completions`},
		{"file_search", `{"model":"m","input":"hi","tools":[{"type":"function","name":"f"},{"type":"file_search","vector_store_ids":["vs_1"]}]}`, `tools[1]: tool type "file_search"`},
		{"mcp", `{"model":"m","input":"hi","tools":[{"type":"mcp","server_label":"x","server_url":"https://x"}]}`, `"mcp"`},
		{"computer_use", `{"model":"m","input":"hi","tools":[{"type":"computer_use_preview"}]}`, `"computer_use_preview"`},
		{"code_interpreter", `{"model":"m","input":"hi","tools":[{"type":"code_interpreter","container":{"type":"auto"}}]}`, `"code_interpreter"`},
		{"image_generation", `{"model":"m","input":"hi","tools":[{"type":"image_generation"}]}`, `"image_generation"`},
		{"tool without type", `{"model":"m","input":"hi","tools":[{"name":"f"}]}`, `tool type ""`},
		{"tool without name", `{"model":"m","input":"hi","tools":[{"type":"function"}]}`, "tools[0].name: field required"},
		{"hosted tool_choice", `{"model":"m","input":"hi","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"file_search"}}`, `tool_choice type "file_search"`},
		{"allowed_tools", `{"model":"m","input":"hi","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"allowed_tools","mode":"auto","tools":[]}}`, `"allowed_tools"`},
		{"bad tool_choice", `{"model":"m","input":"hi","tool_choice":"sometimes"}`, `tool_choice "sometimes"`},
		{"tool_choice no name", `{"model":"m","input":"hi","tool_choice":{"type":"function"}}`, "tool_choice.name"},
		{"item_reference", `{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}`, "input[0]: item_reference"},
		{"computer_call_output", `{"model":"m","input":[{"role":"user","content":"x"},{"type":"computer_call_output","call_id":"c","output":{}}]}`, `input[1]: item type "computer_call_output" is not available`},
		{"web_search_call", `{"model":"m","input":[{"type":"web_search_call","id":"ws_1","status":"completed"}]}`, `"web_search_call"`},
		{"item without type", `{"model":"m","input":[{"content":"hi"}]}`, "needs a type or a role"},
		{"message without role", `{"model":"m","input":[{"type":"message","content":"hi"}]}`, "input[0]: role: field required"},
		{"bad role", `{"model":"m","input":[{"role":"tool","content":"hi"}]}`, `must be user, assistant, system or developer, got "tool"`},
		{"image file_id", `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]}`, "file_id"},
		{"image without url", `{"model":"m","input":[{"role":"user","content":[{"type":"input_image"}]}]}`, "image_url required"},
		{"input_file", `{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]}`, "input_file parts are not available"},
		{"input_audio", `{"model":"m","input":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, "input_audio parts"},
		{"image in system", `{"model":"m","input":[{"role":"system","content":[{"type":"input_image","image_url":"https://x/y.png"}]}]}`, `content[0]: content part type "input_image"`},
		{"content number", `{"model":"m","input":[{"role":"user","content":5}]}`, "content must be a string or an array"},
		{"call without call_id", `{"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]}`, "input[0].call_id"},
		{"call without name", `{"model":"m","input":[{"type":"function_call","call_id":"c","arguments":"{}"}]}`, "input[0].name"},
		{"output without call_id", `{"model":"m","input":[{"type":"function_call_output","output":"x"}]}`, "input[0].call_id"},
		{"output image", `{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_image","image_url":"https://x"}]}]}`, "input[0]: content[0]"},
		{"output object", `{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":{"a":1}}]}`, "output must be a string"},
		{"format type", `{"model":"m","input":"hi","text":{"format":{"type":"grammar"}}}`, `text.format.type: unknown "grammar"`},
		{"schema without name", `{"model":"m","input":"hi","text":{"format":{"type":"json_schema","schema":{}}}}`, "text.format.name"},
		{"schema without schema", `{"model":"m","input":"hi","text":{"format":{"type":"json_schema","name":"x"}}}`, "text.format.schema"},
		{"instructions array", `{"model":"m","input":"hi","instructions":[{"role":"user","content":"x"}]}`, "not a valid Responses API request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := ResponsesToChatRequest([]byte("keep"), []byte(tt.body))
			if err == nil {
				t.Fatalf("accepted: %s", out)
			}
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("error %v does not wrap ErrInvalidRequest", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if string(out) != "keep" {
				t.Errorf("dst changed on error: %q", out)
			}
		})
	}
}

func TestResponsesToChatAccepts(t *testing.T) {
	for _, tt := range []struct {
		name, body, want string
	}{
		{"string input appends", `{"model":"m","input":"hi"}`, `prefix{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{"empty previous_response_id", `{"model":"m","input":"hi","previous_response_id":""}`, `prefix{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{"reasoning only dropped", `{"model":"m","input":[{"role":"user","content":"a"},{"type":"reasoning","summary":[]}]}`, `prefix{"model":"m","messages":[{"role":"user","content":"a"}]}`},
		{"empty user content", `{"model":"m","input":[{"role":"user","content":[]}]}`, `prefix{"model":"m","messages":[{"role":"user","content":""}]}`},
		{"image url object", `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":{"url":"https://x/y.png"}}]}]}`,
			`prefix{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`},
		{"assistant refusal", `{"model":"m","input":[{"role":"assistant","content":[{"type":"refusal","refusal":"no"}]},{"role":"user","content":"please"}]}`,
			`prefix{"model":"m","messages":[{"role":"assistant","content":"no"},{"role":"user","content":"please"}]}`},
		{"tool output after text", `{"model":"m","input":[{"role":"user","content":"a"},{"type":"function_call","call_id":"c","name":"f","arguments":""},{"type":"function_call_output","call_id":"c","output":null}]}`,
			`prefix{"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":""}}]},{"role":"tool","content":"","tool_call_id":"c"}]}`},
		{"html kept", `{"model":"m","input":"<b>&</b>"}`, `prefix{"model":"m","messages":[{"role":"user","content":"<b>&</b>"}]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := ResponsesToChatRequest([]byte("prefix"), []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Errorf("got  %s\nwant %s", out, tt.want)
			}
		})
	}
}

func TestChatToResponsesResponseRefuses(t *testing.T) {
	_, err := ChatToResponsesResponse(nil, []byte(`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`), nil, "resp_1")
	var e *Error
	if !errors.As(err, &e) || e.Message != "Rate limit reached" || e.Status != 502 {
		t.Errorf("error body: %v", err)
	}
	if _, err := ChatToResponsesResponse(nil, []byte(`not json`), nil, "resp_1"); err == nil {
		t.Errorf("a body that is not JSON was translated")
	}
	// A request that does not parse leaves the echoed settings at their defaults.
	out, err := ChatToResponsesResponse([]byte("x"), []byte(`{"choices":[]}`), []byte(`{`), "")
	if err != nil || !bytes.HasPrefix(out, []byte(`x{"id":"","object":"response"`)) || !json.Valid(out[1:]) {
		t.Errorf("got %s, %v", out, err)
	}
}

func TestChatToResponsesStreamDetails(t *testing.T) {
	fixedNow(t)
	chunk := func(delta string) string {
		return `data: {"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":` + delta + `,"finish_reason":null}]}` + "\n\n"
	}
	for _, tt := range []struct {
		name, in string
		want     []string // substrings of the output, in order
	}{
		{"refusal after text", chunk(`{"content":"Hi. "}`) + chunk(`{"refusal":"I can't"}`) + chunk(`{"refusal":" do that."}`) + "data: [DONE]\n\n",
			[]string{`"type":"response.content_part.added"`, `"content_index":0,"part":{"type":"output_text"`,
				`"type":"response.content_part.added"`, `"content_index":1,"part":{"type":"refusal","refusal":""}`,
				`event: response.refusal.delta`, `"delta":"I can't"}`,
				`event: response.refusal.done`, `"refusal":"I can't do that."`,
				`"content":[{"type":"output_text","text":"Hi. ","annotations":[]},{"type":"refusal","refusal":"I can't do that."}]`}},
		{"tool call before text", chunk(`{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]}`) +
			chunk(`{"content":"done"}`) + "data: [DONE]\n\n",
			[]string{`"output_index":0,"item":{"id":"fc_0194f5e0c4b07c2a_0","type":"function_call"`,
				`"output_index":1,"item":{"id":"msg_0194f5e0c4b07c2a","type":"message"`}},
		{"calls without index or id", chunk(`{"tool_calls":[{"function":{"name":"a","arguments":"{\"x\":"}}]}`) +
			chunk(`{"tool_calls":[{"function":{"arguments":"1}"}}]}`) +
			chunk(`{"tool_calls":[{"id":"call_b","function":{"name":"b","arguments":"{}"}}]}`) + "data: [DONE]\n\n",
			[]string{`"call_id":"call_0194f5e0c4b07c2a_0","name":"a"`, `"arguments":"{\"x\":1}","call_id":"call_0194f5e0c4b07c2a_0"`,
				`"id":"fc_0194f5e0c4b07c2a_1","type":"function_call","status":"completed","arguments":"{}","call_id":"call_b","name":"b"`}},
		{"name in pieces", chunk(`{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"get_"}}]}`) +
			chunk(`{"tool_calls":[{"index":0,"function":{"name":"weather","arguments":"{}"}}]}`) + "data: [DONE]\n\n",
			[]string{`"status":"completed","arguments":"{}","call_id":"call_1","name":"get_weather"`}},
		{"other choices ignored", `data: {"choices":[{"index":1,"delta":{"content":"no"}},{"index":0,"delta":{"content":"yes"}}]}` + "\n\n" + "data: [DONE]\n\n",
			[]string{`"delta":"yes"`, `"text":"yes"`}},
		{"content filter", chunk(`{"content":"x"}`) + `data: {"choices":[{"index":0,"delta":{},"finish_reason":"content_filter"}]}` + "\n\ndata: [DONE]\n\n",
			[]string{`event: response.incomplete`, `"status":"incomplete"`, `"incomplete_details":{"reason":"content_filter"}`}},
		{"events after done ignored", chunk(`{"content":"x"}`) + "data: [DONE]\n\n" + chunk(`{"content":"late"}`),
			[]string{`event: response.completed`}},
		{"keep-alives", ": ping\n\n" + "data: \n\n" + chunk(`{"content":"x"}`) + "data: [DONE]\n\n",
			[]string{`event: response.created`, `"delta":"x"`}},
		{"no created", `data: {"choices":[{"index":0,"delta":{"content":"x"}}]}` + "\n\ndata: [DONE]\n\n",
			[]string{`"created_at":1700000000`, `"model":"gpt-4o"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := feedStream(t, NewChatToResponsesStream(respTestID, []byte(defaultRespReq)), []byte(tt.in), 0)
			if err != nil {
				t.Fatal(err)
			}
			checkRespStream(t, out, true)
			rest := string(out)
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %s (in order)\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			if strings.Contains(string(out), "late") {
				t.Errorf("an event after [DONE] was translated")
			}
		})
	}

	// Malformed chunks and error events end the stream with an *Error.
	for _, in := range []string{"data: {nope\n\n", "data: {\"error\":{\"message\":\"boom\"}}\n\n"} {
		_, err := feedStream(t, NewChatToResponsesStream("r", nil), []byte(in), 0)
		var e *Error
		if !errors.As(err, &e) || e.Status != 502 {
			t.Errorf("%q: %v", in, err)
		}
	}
	// Reading the stream in tiny pieces changes nothing.
	in := golden(t, "../responses/chat_to_responses.stream_tools.in.sse")
	whole, err1 := feedStream(t, NewChatToResponsesStream(respTestID, nil), in, 0)
	pieces, err2 := feedStream(t, NewChatToResponsesStream(respTestID, nil), in, 7)
	if err1 != nil || err2 != nil || !bytes.Equal(whole, pieces) {
		t.Errorf("reading in pieces changed the output (%v, %v)", err1, err2)
	}
}

func TestResponsesEventKind(t *testing.T) {
	for _, tt := range []struct {
		name, data string
		want       ResponsesEvent
	}{
		{"response.created", `{"type":"response.created","response":{}}`, 0},
		{"response.in_progress", ``, 0},
		{"response.output_item.added", `{"type":"response.output_item.added","output_index":0,"item":{"id":"msg_1","type":"message","content":[]}}`, 0},
		{"response.output_item.added", `{"type":"response.output_item.added","output_index":1,"item":{"id":"fc_1","type":"function_call","name":"f"}}`, ResponsesContent},
		{"response.content_part.added", `{}`, 0},
		{"response.output_text.delta", `{"delta":"hi"}`, ResponsesContent},
		{"response.function_call_arguments.delta", `{}`, ResponsesContent},
		{"response.reasoning_summary_text.delta", `{}`, ResponsesContent},
		{"response.refusal.delta", `{}`, ResponsesContent},
		{"response.output_text.done", `{}`, 0},
		{"response.output_item.done", `{}`, 0},
		{"response.completed", `{}`, ResponsesContent | ResponsesDone},
		{"response.incomplete", `{}`, ResponsesContent | ResponsesDone},
		{"response.failed", `{}`, ResponsesDone | ResponsesError},
		{"error", `{"type":"error","code":"server_error","message":"x"}`, ResponsesError},
		// Without an event name the data's type decides.
		{"", `{"type":"response.output_text.delta","delta":"x"}`, ResponsesContent},
		{"", `{"sequence_number":9,"type":"response.completed","response":{}}`, ResponsesContent | ResponsesDone},
		{"", `{"type":"response.output_item.added","item":{"type":"function_call"}}`, ResponsesContent},
		{"", `{"type":"error","message":"x"}`, ResponsesError},
		{"", `{"error":{"message":"x"}}`, ResponsesError},
		{"", `{"error":null,"type":"response.created"}`, 0},
		{"", `[DONE]`, 0},
		{"", ``, 0},
		{"", `{"type":`, 0},
	} {
		if got := ResponsesEventKind([]byte(tt.name), []byte(tt.data)); got != tt.want {
			t.Errorf("%s %s: %b, want %b", tt.name, tt.data, got, tt.want)
		}
	}
	// What the translator emits classifies as the proxy expects: content with the
	// first delta, done (and content) at the end, nothing before.
	out := runRespStream(t, []byte(defaultRespReq), golden(t, "../responses/chat_to_responses.stream_tools.in.sse"))
	r := sse.NewReader(bytes.NewReader(out), 0)
	var kinds []ResponsesEvent
	for {
		name, data, err := r.Next()
		if err != nil {
			break
		}
		kinds = append(kinds, ResponsesEventKind(name, data))
	}
	if kinds[0] != 0 || kinds[1] != 0 || kinds[2] != 0 || kinds[len(kinds)-1] != ResponsesContent|ResponsesDone {
		t.Errorf("kinds %v", kinds)
	}
}

// FuzzResponsesToChatRequest checks that the request translation never panics and
// yields JSON or an ErrInvalidRequest.
func FuzzResponsesToChatRequest(f *testing.F) {
	respSeeds(f, "responses_to_chat.*.in.json")
	f.Add([]byte(`{"model":"m","input":[{"type":"function_call","call_id":"c","name":"f"},{"type":"function_call_output","call_id":"c","output":[{"type":"input_text","text":"x"}]}]}`))
	f.Add([]byte(`{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":{"url":"u"}}]}],"tools":[{"type":"web_search"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := ResponsesToChatRequest([]byte("prefix"), body)
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error %v does not wrap ErrInvalidRequest", err)
			}
			return
		}
		if !bytes.HasPrefix(out, []byte("prefix")) || !json.Valid(out[len("prefix"):]) {
			t.Fatalf("output is not prefix+JSON: %s", out)
		}
		var chat struct {
			Model    string            `json:"model"`
			Messages []json.RawMessage `json:"messages"`
		}
		if json.Unmarshal(out[len("prefix"):], &chat) != nil || chat.Model == "" || len(chat.Messages) == 0 {
			t.Fatalf("translated request has no model or messages: %s", out)
		}
	})
}

// FuzzChatToResponses checks the answer translations on arbitrary chat bodies and
// streams: no panic, JSON responses, and streams that keep their invariants.
func FuzzChatToResponses(f *testing.F) {
	respSeeds(f, "chat_to_responses.*.in.*")
	f.Fuzz(func(t *testing.T, body []byte) {
		if out, err := ChatToResponsesResponse(nil, body, body, "resp_x"); err == nil && !json.Valid(out) {
			t.Fatalf("ChatToResponsesResponse: not JSON: %s", out)
		}
		out, err := feedStream(t, NewChatToResponsesStream("resp_x", body), body, 64)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("stream error %v is not *Error", err)
			}
		}
		checkRespStream(t, out, err == nil)
	})
}

func respSeeds(f *testing.F, pattern string) {
	files, _ := filepath.Glob(respGoldenDir + pattern)
	if len(files) == 0 {
		f.Fatalf("no seeds for %s", pattern)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func ExampleResponsesToChatRequest() {
	chat, err := ResponsesToChatRequest(nil, []byte(`{"model":"claude-sonnet-4-5","instructions":"Be brief.",
		"input":[{"role":"user","content":"Weather in Paris?"}],
		"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}],"max_output_tokens":200}`))
	fmt.Println(string(chat), err)
	_, err = ResponsesToChatRequest(nil, []byte(`{"model":"m","input":"hi","previous_response_id":"resp_1"}`))
	fmt.Println(errors.Is(err, ErrInvalidRequest))
	// Output:
	// {"model":"claude-sonnet-4-5","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Weather in Paris?"}],"max_tokens":200,"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]} <nil>
	// true
}
