package provider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/berry-gateway/berry/pkg/sse"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// messagesFront serves POST /v1/messages in front of an OpenAI-compatible upstream
// using only this package's inbound functions, the way the edge's proxy is meant to
// (see messages.go): it is the smallest real composition of them, so the official
// Anthropic SDK can be run against the translation over a real socket.
type messagesFront struct {
	upstream string // OpenAI chat completions URL
}

func (f messagesFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	writeErr := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(AppendMessagesError(nil, status, msg))
	}
	chat, err := MessagesToChatRequest(nil, body)
	if err != nil {
		writeErr(http.StatusBadRequest, err.Error())
		return
	}
	var model struct{ Model string }
	_ = json.Unmarshal(body, &model)
	resp, err := http.Post(f.upstream, "application/json", bytes.NewReader(chat))
	if err != nil {
		writeErr(http.StatusBadGateway, err.Error())
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(OpenAIErrorToMessages(nil, resp.StatusCode, b))
		return
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		out, err := ChatToMessagesResponse(nil, b, model.Model)
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
	tr := NewChatToMessagesStream(model.Model)
	rd := sse.NewReader(resp.Body, 0)
	var out []byte
	for {
		name, data, err := rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if out, err = tr.End(out[:0]); err != nil {
					out = ErrTruncated.AppendMessagesSSE(out)
				}
				_, _ = bw.Write(out)
			}
			break
		}
		out, err = tr.Event(name, data, out[:0])
		if err != nil {
			var e *Error
			errors.As(err, &e)
			_, _ = bw.Write(e.AppendMessagesSSE(out))
			break
		}
		_, _ = bw.Write(out)
		_ = bw.Flush()
	}
	_ = bw.Flush()
}

func TestAnthropicSDKThroughInboundTranslation(t *testing.T) {
	sim := upstreamsim.New(upstreamsim.Options{Name: "oa", Chunks: 4})
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: messagesFront{upstream: sim.URL() + "/chat/completions"}}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	defer srv.Close()

	client := sdk.NewClient(option.WithBaseURL("http://"+ln.Addr().String()), option.WithAPIKey("k"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := upstreamsim.Reply("oa", "claude-any")
	params := sdk.MessageNewParams{
		Model: "claude-any", MaxTokens: 100,
		System:   []sdk.TextBlockParam{{Text: "be brief"}},
		Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("hi there"))},
	}

	msg, err := client.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != want || msg.StopReason != sdk.StopReasonEndTurn || msg.Usage.InputTokens == 0 {
		t.Errorf("non-stream: %+v", msg)
	}

	s := client.Messages.NewStreaming(ctx, params)
	var acc sdk.Message
	for s.Next() {
		if err := acc.Accumulate(s.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Content) != 1 || acc.Content[0].Text != want || acc.StopReason != sdk.StopReasonEndTurn || acc.Usage.OutputTokens == 0 {
		t.Errorf("stream: %+v", acc)
	}

	// Tool round trip, streamed for the call and non-streamed for the answer.
	params.Tools = []sdk.ToolUnionParam{{OfTool: &sdk.ToolParam{Name: "get_weather", InputSchema: sdk.ToolInputSchemaParam{
		Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}}}}}
	s = client.Messages.NewStreaming(ctx, params)
	acc = sdk.Message{}
	for s.Next() {
		if err := acc.Accumulate(s.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	use, ok := acc.Content[len(acc.Content)-1].AsAny().(sdk.ToolUseBlock)
	if !ok || use.Name != "get_weather" || string(use.Input) != `{"city":"sim"}` || acc.StopReason != sdk.StopReasonToolUse {
		t.Fatalf("tool use: %+v stop %q", acc.Content, acc.StopReason)
	}
	params.Messages = append(params.Messages, acc.ToParam(), sdk.NewUserMessage(sdk.NewToolResultBlock(use.ID, "sunny", false)))
	msg, err = client.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Content[0].Text != want+"; tool result: sunny" {
		t.Errorf("after the tool result: %+v", msg.Content)
	}

	// Upstream errors arrive as Anthropic errors the SDK classifies by status.
	sim.SetOptions(upstreamsim.Options{Name: "oa", FailStatus: 429})
	_, err = client.Messages.New(ctx, params)
	var apiErr *sdk.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || !bytes.Contains([]byte(apiErr.RawJSON()), []byte(`"rate_limit_error"`)) {
		t.Errorf("429: %v", err)
	}
}
