package provider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
	"github.com/openai/openai-go/packages/respjson"
	"github.com/openai/openai-go/responses"

	"github.com/berry-gateway/berry/pkg/sse"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// These tests read the Responses translation with the official openai-go SDK's own
// types, checking that every member the SDK marks required is present, and run the
// SDK's client against the translation over a real socket.

// requireSDKFields checks that every member v's SDK type marks required was present
// in the JSON it was decoded from, recursing into present members, slices and unions
// (through their AsAny variant).
func requireSDKFields(t testing.TB, path string, v reflect.Value) {
	t.Helper()
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if m := v.MethodByName("AsAny"); m.IsValid() && m.Type().NumIn() == 0 {
		if variant := m.Call(nil)[0]; !variant.IsNil() {
			requireSDKFields(t, path, variant)
		}
		return
	}
	switch v.Kind() {
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			requireSDKFields(t, path+"["+strconv.Itoa(i)+"]", v.Index(i))
		}
	case reflect.Struct:
		meta := v.FieldByName("JSON")
		if !meta.IsValid() || meta.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if f.Name == "JSON" || !f.IsExported() {
				continue
			}
			m := meta.FieldByName(f.Name)
			if !m.IsValid() {
				continue
			}
			field, ok := m.Interface().(respjson.Field)
			if !ok {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			raw := field.Raw()
			if raw == "" && strings.Contains(f.Tag.Get("json"), ",required") {
				t.Errorf("%s.%s is required by the SDK but missing", path, name)
			}
			if raw != "" && raw != "null" {
				requireSDKFields(t, path+"."+name, v.Field(i))
			}
		}
	}
}

func TestOpenAISDKReadsResponsesTranslation(t *testing.T) {
	fixedNow(t)
	for _, tt := range []struct {
		file, status, text, calls string
		in, out                   int64
	}{
		{"chat_to_responses.text", "completed", "Under a silver moon, a unicorn named Lumen wandered into a sleepy village. She touched each rooftop with her horn, leaving dreams of starlight. By morning, every child woke up smiling.", "", 36, 87},
		{"chat_to_responses.tool_calls", "completed", "I'll check both cities.", `get_weather({"city":"Paris"}) get_weather({"city":"Lyon"}) `, 472, 89},
		{"chat_to_responses.length", "incomplete", "Once upon a time, in a", "", 12, 8},
		{"chat_to_responses.content_filter", "incomplete", "", "", 0, 0},
	} {
		out, err := ChatToResponsesResponse(nil, golden(t, "../responses/"+tt.file+".in.json"), respReq(t, tt.file), respTestID)
		if err != nil {
			t.Fatal(err)
		}
		var r responses.Response
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		requireSDKFields(t, tt.file, reflect.ValueOf(r))
		calls := ""
		for _, item := range r.Output {
			if fc, ok := item.AsAny().(responses.ResponseFunctionToolCall); ok {
				calls += fc.Name + "(" + fc.Arguments + ") "
			}
		}
		if r.ID != respTestID || string(r.Status) != tt.status || r.OutputText() != tt.text || calls != tt.calls ||
			r.Usage.InputTokens != tt.in || r.Usage.OutputTokens != tt.out ||
			!bytes.Contains(out, []byte(`"store":false`)) {
			t.Errorf("%s: SDK read status %q text %q calls %q usage %+v", tt.file, r.Status, r.OutputText(), calls, r.Usage)
		}
	}

	// Streams: every event decodes as the SDK's union with the variant's required
	// members, the deltas add up to the final response, and the final response equals
	// the buffered translation of the same answer.
	for _, tt := range []struct {
		file, status, text, args string
	}{
		{"chat_to_responses.stream_text", "completed", "Hello there, \"friend\" <3", ""},
		{"chat_to_responses.stream_tools", "completed", "Let me check.", `{"city":"Paris"}{}`},
		{"chat_to_responses.stream_length", "incomplete", "Once upon", ""},
	} {
		stream := runRespStream(t, respReq(t, tt.file), golden(t, "../responses/"+tt.file+".in.sse"))
		r := sse.NewReader(bytes.NewReader(stream), 0)
		var final *responses.Response
		text, args := "", ""
		for {
			name, data, err := r.Next()
			if err == io.EOF {
				break
			}
			var ev responses.ResponseStreamEventUnion
			if err := json.Unmarshal(data, &ev); err != nil {
				t.Fatal(err)
			}
			variant := ev.AsAny()
			if variant == nil || ev.Type != string(name) {
				t.Fatalf("%s: event %s is no SDK variant (type %q)", tt.file, name, ev.Type)
			}
			// Decode again into the variant's own type to see its required members.
			concrete := reflect.New(reflect.TypeOf(variant))
			if err := json.Unmarshal(data, concrete.Interface()); err != nil {
				t.Fatal(err)
			}
			requireSDKFields(t, tt.file+":"+string(name), concrete)
			switch v := variant.(type) {
			case responses.ResponseTextDeltaEvent:
				text += v.Delta
			case responses.ResponseFunctionCallArgumentsDeltaEvent:
				args += v.Delta
			case responses.ResponseCompletedEvent:
				final = &v.Response
			case responses.ResponseIncompleteEvent:
				final = &v.Response
			}
		}
		if final == nil || string(final.Status) != tt.status || final.OutputText() != tt.text || text != tt.text || args != tt.args {
			t.Fatalf("%s: deltas %q %q, final %+v", tt.file, text, args, final)
		}
	}

	// The streamed and the buffered translation of the same answer agree.
	stream := runRespStream(t, respReq(t, "chat_to_responses.stream_tools"), golden(t, "../responses/chat_to_responses.stream_tools.in.sse"))
	last := stream[bytes.LastIndex(stream, []byte("data: "))+len("data: "):]
	var completed struct {
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(last, &completed); err != nil {
		t.Fatal(err)
	}
	buffered, err := ChatToResponsesResponse(nil, []byte(`{"id":"x","created":1700000100,"model":"qwen2.5-72b","choices":[{"index":0,
		"message":{"content":"Let me check.","tool_calls":[{"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
		{"id":"call_2","function":{"name":"get_time","arguments":"{}"}}]},"finish_reason":"tool_calls"}],
		"usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70,"prompt_tokens_details":{"cached_tokens":32}}}`),
		respReq(t, "chat_to_responses.stream_tools"), respTestID)
	if err != nil || !bytes.Equal(completed.Response, buffered) {
		t.Errorf("stream and buffered translations differ (%v)\n%s\n%s", err, completed.Response, buffered)
	}
}

// responsesFront serves POST /v1/responses in front of an OpenAI-compatible chat
// upstream using only this package's functions, the way the edge's proxy composes
// them, so the official SDK can be run against the translation over a real socket.
type responsesFront struct {
	upstream string // chat completions URL
}

func (f responsesFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	writeErr := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(AppendOpenAIError(nil, OpenAIErrorType(status), "", msg))
	}
	chat, err := ResponsesToChatRequest(nil, body)
	if err != nil {
		writeErr(http.StatusBadRequest, err.Error())
		return
	}
	resp, err := http.Post(f.upstream, "application/json", bytes.NewReader(chat))
	if err != nil {
		writeErr(http.StatusBadGateway, err.Error())
		return
	}
	defer resp.Body.Close()
	const id = "resp_front1"
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(b) // OpenAI's error shape is the Responses API's
		return
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		out, err := ChatToResponsesResponse(nil, b, body, id)
		if err != nil {
			writeErr(http.StatusBadGateway, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	bw := bufio.NewWriter(w)
	tr := NewChatToResponsesStream(id, body)
	rd := sse.NewReader(resp.Body, 0)
	var out []byte
	for {
		name, data, err := rd.Next()
		if err != nil {
			// The upstream's body ended, cleanly (io.EOF) or cut off: End tells
			// whether the stream is complete.
			if out, err = tr.End(out[:0]); err != nil {
				out = appendRespErrorEvent(out, ErrTruncated)
			}
			_, _ = bw.Write(out)
			break
		}
		out, err = tr.Event(name, data, out[:0])
		if err != nil {
			var e *Error
			errors.As(err, &e)
			_, _ = bw.Write(appendRespErrorEvent(out, e))
			break
		}
		_, _ = bw.Write(out)
		_ = bw.Flush()
	}
	_ = bw.Flush()
}

func TestOpenAISDKThroughResponsesTranslation(t *testing.T) {
	sim := upstreamsim.New(upstreamsim.Options{Name: "oa", Chunks: 4})
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: responsesFront{upstream: sim.URL() + "/chat/completions"}}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	defer srv.Close()

	client := openai.NewClient(option.WithBaseURL("http://"+ln.Addr().String()+"/v1/"), option.WithAPIKey("k"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := upstreamsim.Reply("oa", "any-model")
	params := responses.ResponseNewParams{
		Model:        "any-model",
		Instructions: openai.String("be brief"),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("hi there")},
	}

	r, err := client.Responses.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if r.OutputText() != want || r.Status != responses.ResponseStatusCompleted || r.Usage.InputTokens == 0 || r.Instructions.OfString != "be brief" {
		t.Errorf("non-stream: %+v", r)
	}

	s := client.Responses.NewStreaming(ctx, params)
	text, completed := "", false
	for s.Next() {
		switch ev := s.Current().AsAny().(type) {
		case responses.ResponseTextDeltaEvent:
			text += ev.Delta
		case responses.ResponseCompletedEvent:
			completed = ev.Response.OutputText() == want && ev.Response.Usage.OutputTokens > 0
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if text != want || !completed {
		t.Errorf("stream: text %q completed %v", text, completed)
	}

	// Tool round trip: the call streamed, the output sent back with the call as input.
	params.Tools = []responses.ToolUnionParam{{OfFunction: &responses.FunctionToolParam{Name: "get_weather", Parameters: map[string]any{
		"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}}}}}
	s = client.Responses.NewStreaming(ctx, params)
	var call *responses.ResponseFunctionToolCall
	for s.Next() {
		if ev, ok := s.Current().AsAny().(responses.ResponseOutputItemDoneEvent); ok {
			if fc, ok := ev.Item.AsAny().(responses.ResponseFunctionToolCall); ok {
				call = &fc
			}
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if call == nil || call.Name != "get_weather" || call.Arguments != `{"city":"sim"}` || call.CallID == "" {
		t.Fatalf("tool call: %+v", call)
	}
	params.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
		responses.ResponseInputItemParamOfMessage("hi there", responses.EasyInputMessageRoleUser),
		{OfFunctionCall: &responses.ResponseFunctionToolCallParam{CallID: call.CallID, Name: call.Name, Arguments: call.Arguments}},
		responses.ResponseInputItemParamOfFunctionCallOutput(call.CallID, "sunny"),
	}}
	r, err = client.Responses.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if r.OutputText() != want+"; tool result: sunny" {
		t.Errorf("after the tool output: %+v", r.Output)
	}

	// Refused requests and upstream errors arrive as OpenAI errors the SDK classifies.
	continued := params
	continued.PreviousResponseID = openai.String("resp_earlier")
	_, err = client.Responses.New(ctx, continued)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "send the whole conversation as input") {
		t.Errorf("previous_response_id: %v", err)
	}
	sim.SetOptions(upstreamsim.Options{Name: "oa", FailStatus: 429})
	_, err = client.Responses.New(ctx, params)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 {
		t.Errorf("429: %v", err)
	}

	// A stream cut off by the upstream fails in the SDK, never ends cleanly.
	sim.SetOptions(upstreamsim.Options{Name: "oa", Chunks: 4, FailAfterChunks: 3})
	params.Tools = nil
	s = client.Responses.NewStreaming(ctx, params)
	sawError, sawCompleted := false, false
	for s.Next() {
		switch s.Current().Type {
		case "error":
			sawError = true
		case "response.completed":
			sawCompleted = true
		}
	}
	if !sawError || sawCompleted {
		t.Errorf("truncated stream: error event %v, completed %v (%v)", sawError, sawCompleted, s.Err())
	}
}

// recordTB records the errors of a check that is meant to fail.
type recordTB struct {
	testing.TB
	errs []string
}

func (r *recordTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestRequireSDKFieldsFindsMissingMembers(t *testing.T) {
	var r responses.Response
	body := `{"id":"r","object":"response","created_at":1,"error":null,"incomplete_details":null,"instructions":null,
		"metadata":{},"model":"m","parallel_tool_calls":true,"temperature":1,"tool_choice":"auto","tools":[],"top_p":1,
		"output":[{"id":"m","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"x"}]},
		{"type":"function_call","name":"f","arguments":"{}"}]}`
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	rec := &recordTB{TB: t}
	requireSDKFields(rec, "r", reflect.ValueOf(r))
	got := strings.Join(rec.errs, "; ")
	if !strings.Contains(got, "annotations is required") || !strings.Contains(got, "call_id is required") || len(rec.errs) != 2 {
		t.Errorf("found %q", got)
	}
}
