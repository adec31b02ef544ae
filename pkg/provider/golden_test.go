package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berry-gateway/berry/pkg/sse"
)

var update = flag.Bool("update", false, "rewrite the golden .want files from the current output")

// fixedNow pins "created" timestamps for golden output.
func fixedNow(t testing.TB) {
	t.Helper()
	old := now
	now = func() time.Time { return time.Unix(1700000000, 0) }
	t.Cleanup(func() { now = old })
}

// errorStatus is the upstream status each error golden was recorded with.
var errorStatus = map[string]int{
	"anthropic_error.overloaded":          529,
	"anthropic_error.invalid":             400,
	"anthropic_error.not_json":            502,
	"azure_error.content_filter":          400,
	"azure_error.rate_limit":              429,
	"azure_error.deployment_not_found":    404,
	"openai_error_to_messages.rate_limit": 429,
	"openai_error_to_messages.server":     502,
}

// translate runs the translation a golden file's name selects.
func translate(t *testing.T, name string, in []byte) []byte {
	t.Helper()
	kind, _, _ := strings.Cut(name, ".")
	stream := strings.HasSuffix(name, ".sse")
	base := strings.TrimSuffix(strings.TrimSuffix(name, ".in.json"), ".in.sse")
	var (
		out []byte
		err error
	)
	switch {
	case kind == "chat_to_anthropic":
		out, err = ChatToAnthropic(nil, in, "claude-upstream")
	case kind == "anthropic_to_chat" && stream:
		out = runStream(t, NewAnthropicToChatStream("claude-upstream"), in, (*Error).AppendSSE)
	case kind == "anthropic_to_chat":
		out, err = AnthropicToChat(nil, in)
	case kind == "anthropic_error":
		out = AnthropicErrorToOpenAI(nil, errorStatus[base], in)
	case kind == "azure_error":
		out = AzureErrorToOpenAI(nil, errorStatus[base], in)
	case kind == "messages_to_chat":
		out, err = MessagesToChatRequest(nil, in)
	case kind == "chat_to_messages" && stream:
		out = runStream(t, NewChatToMessagesStream("claude-sonnet-4-5"), in, (*Error).AppendMessagesSSE)
	case kind == "chat_to_messages":
		out, err = ChatToMessagesResponse(nil, in, "claude-sonnet-4-5")
	case kind == "openai_error_to_messages":
		out = OpenAIErrorToMessages(nil, errorStatus[base], in)
	default:
		t.Fatalf("no translation for golden file %s", name)
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !stream {
		if !json.Valid(out) {
			t.Fatalf("%s: output is not JSON: %s", name, out)
		}
		var b bytes.Buffer
		_ = json.Indent(&b, out, "", "  ")
		b.WriteByte('\n')
		return b.Bytes()
	}
	return out
}

// runStream feeds an SSE input through tr the way the proxy does: event by event, End
// on a clean end, and an in-stream error rendered with render and ending the stream.
func runStream(t testing.TB, tr StreamTranslator, in []byte, render func(*Error, []byte) []byte) []byte {
	t.Helper()
	r := sse.NewReader(bytes.NewReader(in), 0)
	var out []byte
	for {
		name, data, err := r.Next()
		if err == io.EOF {
			end, err := tr.End(out)
			if err != nil {
				return render(ErrTruncated, out)
			}
			return end
		}
		if err != nil {
			t.Fatalf("reading SSE: %v", err)
		}
		out, err = tr.Event(name, data, out)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("stream error is not *Error: %v", err)
			}
			return render(e, out)
		}
	}
}

func TestGolden(t *testing.T) {
	fixedNow(t)
	files, err := filepath.Glob("testdata/golden/*.in.*")
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
			got := translate(t, name, in)
			wantFile := strings.Replace(f, ".in.", ".want.", 1)
			if *update {
				if err := os.WriteFile(wantFile, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to record it, then review it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s\n--- got ---\n%s\n--- want ---\n%s", name, wantFile, got, want)
			}
		})
	}
}
