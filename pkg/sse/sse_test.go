package sse

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReader(t *testing.T) {
	long := strings.Repeat("x", 100)
	in := ": comment\r\n" +
		"event: one\r\ndata: a\r\ndata: b\r\n\r\n" + // CRLF, multi-line data
		"data:no-space\n\n" +
		"event: lonely\n\n" + // no data: not dispatched
		"id: 7\nretry: 10\ndata: " + long + "\n\n" + // a line longer than the buffer
		"data\n\n" + // a data field with no colon: empty data, still dispatched
		"data: last" // cut off at EOF
	for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
		rd := NewReader(r, 16)
		type ev struct{ name, data string }
		var got []ev
		for {
			name, data, err := rd.Next()
			if err != nil {
				if err != io.EOF {
					t.Fatalf("Next: %v", err)
				}
				break
			}
			got = append(got, ev{string(name), string(data)})
		}
		want := []ev{{"one", "a\nb"}, {"", "no-space"}, {"", long}, {"", ""}, {"", "last"}}
		if !slices.Equal(got, want) {
			t.Errorf("events %q, want %q", got, want)
		}
	}
}

func TestReaderReportsReadErrors(t *testing.T) {
	boom := errors.New("boom")
	rd := NewReader(io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(boom)), 0)
	for _, want := range []string{"a", "b"} {
		if _, data, err := rd.Next(); err != nil || string(data) != want {
			t.Fatalf("Next = %q, %v; want %q", data, err, want)
		}
	}
	if _, _, err := rd.Next(); !errors.Is(err, boom) {
		t.Fatalf("after the last event: %v, want the read error", err)
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		in   string
		ev   string
		next int
		ok   bool
	}{
		{"data: a\n\nrest", "data: a", 9, true},
		{"data: a\r\n\r\nrest", "data: a", 11, true},
		{"data: a\n", "", 0, false},
		{"data: a\r\n\r", "", 0, false},
		{"\n\n", "", 2, true},
	}
	for _, tc := range tests {
		ev, next, ok := Next([]byte(tc.in))
		if string(ev) != tc.ev || next != tc.next || ok != tc.ok {
			t.Errorf("Next(%q) = %q, %d, %v; want %q, %d, %v", tc.in, ev, next, ok, tc.ev, tc.next, tc.ok)
		}
	}
}

func TestFields(t *testing.T) {
	tests := []struct {
		ev, name, data string
		hasData        bool
	}{
		{"event: e\ndata: x", "e", "x", true},
		{"data: a\ndata: b\ndata: c", "", "a\nb\nc", true},
		{": keep-alive", "", "", false},
		{"event: only", "only", "", false},
		{"data:", "", "", true},
	}
	for _, tc := range tests {
		name, data, _ := Fields([]byte(tc.ev), nil)
		if string(name) != tc.name || string(data) != tc.data || (data != nil) != tc.hasData {
			t.Errorf("Fields(%q) = %q, %q (data %v); want %q, %q (data %v)", tc.ev, name, data, data != nil, tc.name, tc.data, tc.hasData)
		}
	}
}
