package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berry-gateway/berry/pkg/sse"
)

// The fuzzers check the translators' contract on arbitrary input: no panic, JSON
// output that is valid, errors of the documented kind, and streams that stay
// well-formed SSE and end properly. Seeds are the golden inputs.

func seeds(f *testing.F, pattern string) {
	files, _ := filepath.Glob("testdata/golden/" + pattern)
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

func FuzzChatToAnthropic(f *testing.F) {
	seeds(f, "chat_to_anthropic.*.in.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := ChatToAnthropic([]byte("prefix"), body, "m")
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error %v does not wrap ErrInvalidRequest", err)
			}
			return
		}
		if !bytes.HasPrefix(out, []byte("prefix")) || !json.Valid(out[len("prefix"):]) {
			t.Fatalf("output is not prefix+JSON: %s", out)
		}
	})
}

func FuzzMessagesToChatRequest(f *testing.F) {
	seeds(f, "messages_to_chat.*.in.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := MessagesToChatRequest(nil, body)
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error %v does not wrap ErrInvalidRequest", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("output is not JSON: %s", out)
		}
	})
}

func FuzzResponses(f *testing.F) {
	seeds(f, "anthropic_to_chat.*.in.json")
	seeds(f, "chat_to_messages.*.in.json")
	seeds(f, "*_error*.in.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		if out, err := AnthropicToChat(nil, body); err == nil && !json.Valid(out) {
			t.Fatalf("AnthropicToChat: not JSON: %s", out)
		}
		if out, err := ChatToMessagesResponse(nil, body, "m"); err == nil && !json.Valid(out) {
			t.Fatalf("ChatToMessagesResponse: not JSON: %s", out)
		}
		for _, status := range []int{400, 429, 500, 529} {
			for name, out := range map[string][]byte{
				"AnthropicErrorToOpenAI": AnthropicErrorToOpenAI(nil, status, body),
				"AzureErrorToOpenAI":     AzureErrorToOpenAI(nil, status, body),
				"OpenAIErrorToMessages":  OpenAIErrorToMessages(nil, status, body),
			} {
				if !json.Valid(out) {
					t.Fatalf("%s(%d): not JSON: %s", name, status, out)
				}
			}
		}
		if _, _, err := ParseModelIDs("openai", body); err != nil && !errors.Is(err, ErrNoModelList) {
			t.Fatalf("ParseModelIDs error %v is not ErrNoModelList", err)
		}
	})
}

// checkStream runs sse through tr and checks the output event by event with check;
// it reports whether the translator stopped on an error.
func checkStream(t *testing.T, tr StreamTranslator, stream []byte, render func(*Error, []byte) []byte) (out []byte, failed bool) {
	r := sse.NewReader(bytes.NewReader(stream), 64)
	for {
		name, data, err := r.Next()
		if err == io.EOF {
			end, err := tr.End(out)
			if err != nil {
				return render(ErrTruncated, out), true
			}
			return end, false
		}
		if err != nil {
			t.Fatalf("SSEReader on a bytes.Reader: %v", err)
		}
		out, err = tr.Event(name, data, out)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("stream error %v is not *Error", err)
			}
			return render(e, out), true
		}
	}
}

func FuzzAnthropicToChatStream(f *testing.F) {
	seeds(f, "anthropic_to_chat.*.in.sse")
	f.Fuzz(func(t *testing.T, stream []byte) {
		out, failed := checkStream(t, NewAnthropicToChatStream("m"), stream, (*Error).AppendSSE)
		events := strings.Split(string(out), "\n\n")
		if events[len(events)-1] != "" {
			t.Fatalf("output does not end with a blank line: %q", out)
		}
		events = events[:len(events)-1]
		for i, ev := range events {
			data, ok := strings.CutPrefix(ev, "data: ")
			if !ok || strings.Contains(data, "\n") {
				t.Fatalf("event %d is not one data line: %q", i, ev)
			}
			if data == "[DONE]" {
				if i != len(events)-1 || failed {
					t.Fatalf("[DONE] at %d of %d (failed %v)", i, len(events), failed)
				}
				continue
			}
			if !json.Valid([]byte(data)) {
				t.Fatalf("event %d is not JSON: %q", i, data)
			}
		}
		if !failed && (len(events) == 0 || events[len(events)-1] != "data: [DONE]") {
			t.Fatalf("a clean stream must end with [DONE]: %q", out)
		}
	})
}

func FuzzChatToMessagesStream(f *testing.F) {
	seeds(f, "chat_to_messages.*.in.sse")
	f.Fuzz(func(t *testing.T, stream []byte) {
		out, failed := checkStream(t, NewChatToMessagesStream("m"), stream, (*Error).AppendMessagesSSE)
		events := strings.Split(string(out), "\n\n")
		if events[len(events)-1] != "" {
			t.Fatalf("output does not end with a blank line: %q", out)
		}
		events = events[:len(events)-1]
		open := -1
		for i, ev := range events {
			nameLine, dataLine, ok := strings.Cut(ev, "\n")
			name, ok1 := strings.CutPrefix(nameLine, "event: ")
			data, ok2 := strings.CutPrefix(dataLine, "data: ")
			if !ok || !ok1 || !ok2 || strings.Contains(data, "\n") {
				t.Fatalf("event %d is not event:+data: lines: %q", i, ev)
			}
			var v struct {
				Type  string `json:"type"`
				Index int    `json:"index"`
			}
			if err := json.Unmarshal([]byte(data), &v); err != nil || v.Type != name {
				t.Fatalf("event %d: data %q does not match its name %q (%v)", i, data, name, err)
			}
			switch name {
			case "content_block_start":
				if open >= 0 {
					t.Fatalf("block %d starts while %d is open", v.Index, open)
				}
				open = v.Index
			case "content_block_stop":
				if v.Index != open {
					t.Fatalf("stop of %d while %d is open", v.Index, open)
				}
				open = -1
			}
		}
		if !failed && (len(events) < 3 || !strings.HasPrefix(events[0], "event: message_start\n") ||
			!strings.HasPrefix(events[len(events)-1], "event: message_stop\n")) {
			t.Fatalf("a clean stream must go from message_start to message_stop: %q", out)
		}
	})
}
