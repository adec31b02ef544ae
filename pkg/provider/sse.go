package provider

import (
	"bufio"
	"bytes"
	"io"
)

// SSEReader splits a server-sent-events stream into events, for feeding a
// StreamTranslator. It keeps one buffer and reuses it: the slices Next returns are
// valid until the following call. The zero value is not usable; use NewSSEReader.
type SSEReader struct {
	r    *bufio.Reader
	name []byte
	data []byte
}

// NewSSEReader reads events from r; size is the read buffer size (0: 16 KiB). Lines
// longer than the buffer are still read whole.
func NewSSEReader(r io.Reader, size int) *SSEReader {
	if size <= 0 {
		size = 16 << 10
	}
	return &SSEReader{r: bufio.NewReaderSize(r, size)}
}

// Reset makes the reader read from r, keeping its buffers, so it can be pooled.
func (s *SSEReader) Reset(r io.Reader) {
	s.r.Reset(r)
	s.name, s.data = s.name[:0], s.data[:0]
}

// Next returns the next event's name ("" when it has no event: line) and its data
// (several data: lines joined by "\n"). Comments and other fields are skipped. It
// returns io.EOF after the last event; an event cut off by the end of the stream is
// returned first if it had data.
func (s *SSEReader) Next() (name, data []byte, err error) {
	s.name, s.data = s.name[:0], s.data[:0]
	hasData := false
	for {
		line, err := s.readLine()
		if err != nil {
			if hasData && err == io.EOF {
				return s.name, s.data, nil
			}
			return nil, nil, err
		}
		if len(line) == 0 {
			if hasData {
				return s.name, s.data, nil
			}
			s.name = s.name[:0] // an event with no data is not dispatched
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "event":
			s.name = append(s.name[:0], value...)
		case "data":
			if hasData {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, value...)
			hasData = true
		}
	}
}

// readLine returns one line without its CR/LF. The line aliases the reader's buffer
// unless it overflowed it, in which case it is assembled in a fresh slice.
func (s *SSEReader) readLine() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		long := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			line, err = s.r.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil && (err != io.EOF || len(line) == 0) {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}
