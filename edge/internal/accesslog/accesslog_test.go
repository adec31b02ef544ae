package accesslog

import (
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func record() *Record {
	r := &Record{
		Time:        time.Date(2026, 11, 29, 10, 0, 0, 123456000, time.UTC),
		RequestID:   []byte("req-1"),
		Key:         "team \"a\"",
		Model:       "gpt-4o",
		Backend:     "openai/gpt-4o",
		Status:      200,
		BytesIn:     120,
		BytesOut:    4567,
		Duration:    1234567 * time.Microsecond,
		TTFT:        250 * time.Millisecond,
		InputTokens: 12, OutputTokens: -1,
		Client:    &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555},
		StreamEnd: StreamComplete,
	}
	r.AddAttempt("azure/gpt-4o", "5xx")
	r.AddAttempt("openai/gpt-4o", "2xx")
	return r
}

// lines runs fn against a logger writing to a file and returns what it wrote.
func lines(t *testing.T, format Format, sample float64, fn func(*Logger)) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := Open(path, "edge-1", format, sample)
	if err != nil {
		t.Fatal(err)
	}
	fn(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestJSONLine(t *testing.T) {
	got := lines(t, JSON, 1, func(l *Logger) { l.Log(record()) })
	if len(got) != 1 {
		t.Fatalf("%d lines, want 1", len(got))
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(got[0]), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, got[0])
	}
	want := map[string]any{
		"time": "2026-11-29T10:00:00.123456Z", "request_id": "req-1", "edge": "edge-1", "key": `team "a"`,
		"model": "gpt-4o", "backend": "openai/gpt-4o",
		"attempts": []any{
			map[string]any{"backend": "azure/gpt-4o", "outcome": "5xx"},
			map[string]any{"backend": "openai/gpt-4o", "outcome": "2xx"},
		},
		"status": 200.0, "bytes_in": 120.0, "bytes_out": 4567.0, "duration_ms": 1234.567, "ttft_ms": 250.0,
		"input_tokens": 12.0, "stream_end": "complete", "client": "127.0.0.1",
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("line\n%s\nparsed %v\nwant   %v", got[0], m, want)
	}
}

func TestLogfmtLine(t *testing.T) {
	got := lines(t, Logfmt, 1, func(l *Logger) { l.Log(record()) })
	want := `time=2026-11-29T10:00:00.123456Z request_id=req-1 edge=edge-1 key="team \"a\"" model=gpt-4o ` +
		`backend=openai/gpt-4o attempts=azure/gpt-4o:5xx,openai/gpt-4o:2xx status=200 bytes_in=120 bytes_out=4567 ` +
		`duration_ms=1234.567 ttft_ms=250 input_tokens=12 stream_end=complete client=127.0.0.1`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestManyAttemptsAreCounted(t *testing.T) {
	r := record()
	for range 10 {
		r.AddAttempt("p/m", "error")
	}
	got := lines(t, JSON, 1, func(l *Logger) { l.Log(r) })
	var m struct {
		Attempts []any `json:"attempts"`
		Total    int   `json:"attempts_total"`
	}
	if err := json.Unmarshal([]byte(got[0]), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Attempts) != MaxAttempts || m.Total != 12 {
		t.Fatalf("%d attempts listed, total %d; want %d and 12", len(m.Attempts), m.Total, MaxAttempts)
	}
}

// TestSampling keeps every error and failed stream, and the configured share of the
// rest.
func TestSampling(t *testing.T) {
	for _, tc := range []struct {
		ratio        float64
		okMin, okMax int
	}{{0, 0, 0}, {1, 1000, 1000}, {0.5, 400, 600}} {
		got := lines(t, JSON, tc.ratio, func(l *Logger) {
			for i := range 1000 {
				r := record()
				r.StreamEnd = ""
				r.RequestID = []byte("ok")
				l.Log(r)
				if i%10 == 0 {
					r.Status, r.RequestID = 502, []byte("err")
					l.Log(r)
					r.Status, r.RequestID, r.StreamEnd = 200, []byte("failed-stream"), StreamFailed
					l.Log(r)
				}
			}
		})
		counts := map[string]int{}
		for _, line := range got {
			var m struct {
				ID string `json:"request_id"`
			}
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatal(err)
			}
			counts[m.ID]++
		}
		if counts["err"] != 100 || counts["failed-stream"] != 100 || counts["ok"] < tc.okMin || counts["ok"] > tc.okMax {
			t.Errorf("ratio %v: %v; want every error and failed stream, and %d..%d successes",
				tc.ratio, counts, tc.okMin, tc.okMax)
		}
	}
}

// TestFullBufferDropsAndCounts: a writer that cannot keep up costs lines, counted,
// never a wait.
func TestFullBufferDropsAndCounts(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l := newLogger("e", JSON, 1, 4096)
	l.out = w
	go l.write(time.Millisecond)
	// Nobody reads the pipe: the writer blocks once the pipe's buffer is full, and
	// lines pile up to the limit.
	const n = 100_000
	for range n {
		l.Log(record())
	}
	if d := l.Dropped(); d == 0 {
		t.Fatalf("no line dropped of %d with a stuck writer", n)
	}
	read := make(chan int)
	go func() {
		b, _ := io.ReadAll(r)
		read <- strings.Count(string(b), "\n")
	}()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := <-read; uint64(got)+l.Dropped() != n {
		t.Fatalf("%d lines written and %d dropped of %d", got, l.Dropped(), n)
	}
}

// TestReopen follows logrotate: the file is moved away, SIGHUP reopens the path, and
// later lines go to the new file.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	l, err := Open(path, "e", JSON, 1)
	if err != nil {
		t.Fatal(err)
	}
	l.Log(record())
	waitFor(t, func() bool { b, _ := os.ReadFile(path); return len(b) > 0 })
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	r := record()
	r.RequestID = []byte("after")
	l.Log(r)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if strings.Count(string(old), "\n") != 1 || !strings.Contains(string(cur), `"request_id":"after"`) {
		t.Fatalf("rotated file %q, new file %q", old, cur)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "x.log"), "e", JSON, 1); err == nil {
		t.Error("a file in a missing directory opened")
	}
	if _, err := Open("-", "e", JSON, 1.5); err == nil {
		t.Error("a sample ratio of 1.5 accepted")
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("format xml accepted")
	}
}

func TestNilLoggerLogsNothing(t *testing.T) {
	var l *Logger
	l.Log(record())
	if l.Dropped() != 0 || l.Reopen() != nil || l.Close() != nil {
		t.Fatal("nil logger misbehaves")
	}
}

func TestLogAllocations(t *testing.T) {
	l := newLogger("e", JSON, 1, 1<<20)
	r := record()
	n := testing.AllocsPerRun(1000, func() {
		l.Log(r)
		l.pending = l.pending[:0]
	})
	if n != 0 {
		t.Fatalf("Log allocates %v times per line", n)
	}
}
