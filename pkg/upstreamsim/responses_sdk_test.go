package upstreamsim_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
	"github.com/openai/openai-go/packages/respjson"
	"github.com/openai/openai-go/responses"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// These tests drive the simulator with the official OpenAI SDK, so a shape the SDK
// would misread fails here.

func sdkClient(s *upstreamsim.Server) openai.Client {
	return openai.NewClient(option.WithBaseURL(s.URL()+"/"), option.WithAPIKey("sk-sim"), option.WithMaxRetries(0))
}

// checkShape fails when v, an SDK response type, lacks a field the SDK marks required
// or carries a field the SDK does not know (a misspelling), at any depth.
func checkShape(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Slice:
		for i := range v.Len() {
			checkShape(t, path+"["+strconv.Itoa(i)+"]", v.Index(i))
		}
		return
	case reflect.Struct:
	default:
		return
	}
	meta := v.FieldByName("JSON")
	if !meta.IsValid() {
		return
	}
	if extra := meta.FieldByName("ExtraFields"); extra.IsValid() {
		for k := range extra.Interface().(map[string]respjson.Field) {
			// OpenAI sends store, but this SDK version does not read it.
			if k != "store" {
				t.Errorf("%s: field %q unknown to the SDK", path, k)
			}
		}
	}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() || f.Name == "JSON" {
			continue
		}
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if strings.Contains(tag, ",required") {
			if fm := meta.FieldByName(f.Name); fm.IsValid() && fm.Interface().(respjson.Field).Raw() == respjson.Omitted {
				t.Errorf("%s: required field %q missing", path, name)
			}
		}
		if fm := meta.FieldByName(f.Name); fm.IsValid() && fm.Interface().(respjson.Field).Valid() {
			checkShape(t, path+"."+name, v.Field(i))
		}
	}
}

func TestResponsesSDK(t *testing.T) {
	a := start(t, upstreamsim.Options{Name: "sdk", APIKey: "sk-sim"})
	b := start(t, upstreamsim.Options{Name: "other", APIKey: "sk-sim"})
	client, ctx := sdkClient(a), context.Background()

	r, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model:        "gpt-x",
		Instructions: openai.String("be brief"),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("hello there")},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, "response", reflect.ValueOf(*r))
	checkShape(t, "message", reflect.ValueOf(r.Output[0].AsMessage()))
	checkShape(t, "output_text", reflect.ValueOf(r.Output[0].AsMessage().Content[0].AsOutputText()))
	if r.OutputText() != "Hello from sdk (turn 1)" || r.Status != responses.ResponseStatusCompleted || r.Model != "gpt-x" ||
		r.Usage.InputTokens != 4 || r.Usage.OutputTokens != 5 || r.Usage.TotalTokens != 9 || r.Instructions.OfString != "be brief" {
		t.Errorf("response = %s", r.RawJSON())
	}

	// A function call, its output sent back as the next turn, and the answer.
	weather := responses.ToolParamOfFunction("weather", map[string]any{
		"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"},
	}, true)
	call, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model:              "gpt-x",
		PreviousResponseID: openai.String(r.ID),
		Input:              responses.ResponseNewParamsInputUnion{OfString: openai.String("weather in Paris?")},
		Tools:              []responses.ToolUnionParam{weather},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, "call", reflect.ValueOf(*call))
	fc := call.Output[0].AsFunctionCall()
	checkShape(t, "function_call", reflect.ValueOf(fc))
	if len(call.Output) != 1 || call.Output[0].Type != "function_call" || fc.Name != "weather" || fc.Arguments != `{"city":"sim"}` || fc.CallID == "" {
		t.Fatalf("function call = %s", call.RawJSON())
	}
	answer, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model:              "gpt-x",
		PreviousResponseID: openai.String(call.ID),
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			responses.ResponseInputItemParamOfFunctionCallOutput(fc.CallID, "sunny"),
		}},
		Tools: []responses.ToolUnionParam{weather},
	})
	if err != nil {
		t.Fatal(err)
	}
	if answer.OutputText() != "Hello from sdk (turn 3); tool result: sunny" || answer.PreviousResponseID != call.ID {
		t.Errorf("answer = %s", answer.RawJSON())
	}

	// The stored-response routes.
	got, err := client.Responses.Get(ctx, answer.ID, responses.ResponseGetParams{})
	if err != nil || got.OutputText() != answer.OutputText() {
		t.Errorf("Get = %v, %v", got, err)
	}
	items, err := client.Responses.InputItems.List(ctx, answer.ID, responses.InputItemListParams{})
	if err != nil || len(items.Data) != 1 || items.Data[0].Type != "function_call_output" || items.Data[0].AsFunctionCallOutput().Output != "sunny" ||
		items.Data[0].ID == "" || items.HasMore {
		t.Errorf("InputItems.List = %+v, %v", items, err)
	} else {
		checkShape(t, "input_items", reflect.ValueOf(items.Data))
		checkShape(t, "function_call_output", reflect.ValueOf(items.Data[0].AsFunctionCallOutput()))
	}
	if err := client.Responses.Delete(ctx, answer.ID); err != nil {
		t.Error(err)
	}
	var apiErr *openai.Error
	if _, err := client.Responses.Get(ctx, answer.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("Get after Delete: %v", err)
	}
	if _, err := client.Responses.Cancel(ctx, r.ID); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
		t.Errorf("Cancel of a foreground response: %v", err)
	}
	bg, err := client.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-x", Background: openai.Bool(true),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("later")}})
	if err != nil || bg.Status != responses.ResponseStatusQueued {
		t.Fatalf("background = %v, %v", bg, err)
	}
	if c, err := client.Responses.Cancel(ctx, bg.ID); err != nil || c.Status != responses.ResponseStatusCancelled {
		t.Errorf("Cancel = %v, %v", c, err)
	}

	// Another account does not know the conversation.
	other := sdkClient(b)
	_, err = other.Responses.New(ctx, responses.ResponseNewParams{
		Model: "gpt-x", PreviousResponseID: openai.String(r.ID),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
	})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != "previous_response_not_found" ||
		apiErr.Param != "previous_response_id" || apiErr.Type != "invalid_request_error" {
		t.Errorf("other instance: %v", err)
	}
}

func TestResponsesSDKStream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tools []responses.ToolUnionParam
	}{
		{"text", nil},
		{"function call", []responses.ToolUnionParam{responses.ToolParamOfFunction("lookup", map[string]any{
			"type": "object", "properties": map[string]any{"n": map[string]any{"type": "integer"}}, "required": []string{"n"},
		}, true)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, upstreamsim.Options{Name: "sdk", Chunks: 3})
			client := sdkClient(s)
			stream := client.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
				Model: "gpt-x", Tools: tc.tools,
				Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
			})
			defer stream.Close()
			var (
				text, args string
				completed  *responses.Response
				seq        int64
				n          int
			)
			for stream.Next() {
				ev := stream.Current()
				if ev.SequenceNumber != seq {
					t.Errorf("%s has sequence_number %d, want %d", ev.Type, ev.SequenceNumber, seq)
				}
				seq++
				n++
				switch e := ev.AsAny().(type) {
				case responses.ResponseTextDeltaEvent:
					checkShape(t, ev.Type, reflect.ValueOf(e))
					text += e.Delta
				case responses.ResponseFunctionCallArgumentsDeltaEvent:
					checkShape(t, ev.Type, reflect.ValueOf(e))
					args += e.Delta
				case responses.ResponseCompletedEvent:
					checkShape(t, ev.Type, reflect.ValueOf(e))
					completed = &e.Response
				case nil:
					t.Errorf("event %q unknown to the SDK", ev.Type)
				default:
					checkShape(t, ev.Type, reflect.ValueOf(e))
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if completed == nil || completed.Status != responses.ResponseStatusCompleted || completed.Usage.TotalTokens == 0 {
				t.Fatalf("completed = %+v", completed)
			}
			if tc.tools == nil {
				if n != 11 || text != "Hello from sdk (turn 1)" || completed.OutputText() != text {
					t.Errorf("%d events, text %q, final %q", n, text, completed.OutputText())
				}
				return
			}
			if n != 8 || args != `{"n":1}` || completed.Output[0].AsFunctionCall().Arguments != args {
				t.Errorf("%d events, arguments %q, final %s", n, args, completed.RawJSON())
			}
		})
	}
}
