// Package sse splits a server-sent-events stream into events and reads their fields.
// It is the one SSE parser in Berry: the edge runs Next and Fields over the bytes it
// has read from an upstream, without copying, and Reader runs the same two over an
// io.Reader for tests and tools, so what the tests exercise is what the edge runs.
package sse

import (
	"bytes"
	"io"
)

// Next finds the first complete event in buf: it returns the event without its
// terminating blank line and the offset just past it, or ok=false when buf holds no
// complete event yet. Lines may end in LF or CRLF.
func Next(buf []byte) (ev []byte, next int, ok bool) {
	for i := 0; i < len(buf); i++ {
		if buf[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(buf) && buf[i+1] == '\n':
			return buf[:i], i + 2, true
		case i+2 < len(buf) && buf[i+1] == '\r' && buf[i+2] == '\n':
			return trimCR(buf[:i]), i + 3, true
		}
	}
	return nil, 0, false
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// Fields returns an event's name and its data; data is nil when the event has no data
// line (a comment or keep-alive). Several data lines are joined with "\n" into
// scratch, which is returned for reuse; a single one aliases ev.
func Fields(ev, scratch []byte) (name, data, scratchOut []byte) {
	n := 0
	for len(ev) > 0 {
		line := ev
		if i := bytes.IndexByte(ev, '\n'); i >= 0 {
			line, ev = ev[:i], ev[i+1:]
		} else {
			ev = nil
		}
		line = trimCR(line)
		field, value, _ := bytes.Cut(line, []byte(":"))
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "event":
			name = value
		case "data":
			if value == nil {
				value = line[len(line):] // "data" alone: an empty value, still data
			}
			switch n {
			case 0:
				data = value
			case 1:
				scratch = append(append(append(scratch[:0], data...), '\n'), value...)
				data = scratch
			default:
				scratch = append(append(scratch, '\n'), value...)
				data = scratch
			}
			n++
		}
	}
	return name, data, scratch
}

// Reader reads events from an io.Reader with Next and Fields. The slices Next returns
// are valid until the following call.
type Reader struct {
	r       io.Reader
	buf     []byte
	start   int // buf[start:] is not parsed yet
	scratch []byte
	err     error // what ended the reading
}

// NewReader reads events from r, size bytes at a time (0: 16 KiB); events longer than
// that are still read whole.
func NewReader(r io.Reader, size int) *Reader {
	if size <= 0 {
		size = 16 << 10
	}
	return &Reader{r: r, buf: make([]byte, 0, size)}
}

// Next returns the next event that has data, with its name ("" when it has no event
// line); comments and events without data are skipped, as the SSE specification
// dispatches none for them. An event cut off by the end of the stream is returned if
// it has data; after the last event Next returns io.EOF, or the read error that ended
// the stream.
func (r *Reader) Next() (name, data []byte, err error) {
	for {
		if ev, next, ok := Next(r.buf[r.start:]); ok {
			r.start += next
			if name, data, r.scratch = Fields(ev, r.scratch); data != nil {
				return name, data, nil
			}
			continue
		}
		if r.err != nil {
			rest := r.buf[r.start:]
			r.start = len(r.buf)
			if name, data, r.scratch = Fields(rest, r.scratch); data != nil {
				return name, data, nil
			}
			return nil, nil, r.err
		}
		r.fill()
	}
}

// fill reads more, first moving what is unparsed to the front of the buffer.
func (r *Reader) fill() {
	r.buf = r.buf[:copy(r.buf, r.buf[r.start:])]
	r.start = 0
	if len(r.buf) == cap(r.buf) {
		r.buf = append(r.buf, make([]byte, cap(r.buf))...)[:len(r.buf)]
	}
	n, err := r.r.Read(r.buf[len(r.buf):cap(r.buf)])
	r.buf = r.buf[:len(r.buf)+n]
	r.err = err
}
