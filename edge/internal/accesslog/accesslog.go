// Package accesslog writes one structured line per client request. The request path
// only formats its line and appends it to a bounded buffer: a writer goroutine does
// the I/O, taking the buffer every FlushInterval and writing it in one call (waking it
// per line would cost each request a goroutine hand-off and a write call). When the
// writer falls behind and the buffer is full, lines are dropped and counted, never the
// request delayed.
package accesslog

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

// Format is a line's shape.
type Format uint8

// Formats.
const (
	JSON   Format = iota // one JSON object per line
	Logfmt               // key=value pairs
)

// ParseFormat reads --access-log-format.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "json", "":
		return JSON, nil
	case "logfmt":
		return Logfmt, nil
	}
	return 0, fmt.Errorf("unknown access log format %q (json or logfmt)", s)
}

// Attempt is one upstream attempt of a request: the backend tried and its outcome
// class (2xx, 4xx, 5xx, error, too_long).
type Attempt struct {
	Backend, Outcome string
}

// MaxAttempts bounds the attempts one line lists; more are counted, not listed.
const MaxAttempts = 8

// Record is one request's line. Strings are config ids or gateway-made values, never
// a secret: the key is the key's or user's id, not the token.
type Record struct {
	Time      time.Time
	RequestID []byte
	Key       string // the key's id; "" before authentication
	Model     string // the model the client named ("" when unknown)
	Backend   string // the backend that served ("" when none did)
	Attempts  [MaxAttempts]Attempt
	NAttempts int
	Status    int
	BytesIn   int
	BytesOut  int64
	Duration  time.Duration
	TTFT      time.Duration // streams: time to the first content; 0 for none
	// InputTokens and OutputTokens are the usage when known; -1 when not.
	InputTokens, OutputTokens int64
	Client                    net.Addr // the client's address
	// StreamEnd says how a streamed answer ended; "" for other answers.
	StreamEnd string
}

// How a stream ended (the stream_end field).
const (
	StreamComplete   = "complete"        // the upstream's stream ended properly
	StreamFailed     = "upstream_failed" // it failed after content: the client got an error event
	StreamClientGone = "client_gone"     // the client went away first
	StreamShutdown   = "shutdown"        // the edge's drain ran out of time: the client got an error event
)

// AddAttempt lists one upstream attempt.
func (r *Record) AddAttempt(backend, outcome string) {
	if r.NAttempts < MaxAttempts {
		r.Attempts[r.NAttempts] = Attempt{backend, outcome}
	}
	r.NAttempts++
}

// Logger is an access log. The zero value is not usable; a nil *Logger logs nothing.
type Logger struct {
	edge     string
	format   Format
	sampleOK float64 // share of successful requests logged; errors always are

	mu      sync.Mutex // guards pending
	pending []byte     // lines not yet taken by the writer
	limit   int        // bytes pending at most
	dropped atomic.Uint64
	stop    chan struct{}
	done    chan struct{}

	outMu sync.Mutex // guards out (Reopen and the writer)
	path  string     // "" for standard output
	out   io.WriteCloser
}

// scratch holds a line while it is formatted, outside the lock.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// FlushInterval is how often pending lines are written: how late a line may appear.
const FlushInterval = 50 * time.Millisecond

// pendingLimit bounds the bytes waiting for the writer: at some 400 bytes a line, a
// burst above 5,000 lines per FlushInterval (100,000 a second) loses lines.
const pendingLimit = 2 << 20

// Open starts a logger writing to path ("-" for standard output), lines naming this
// edge. sampleOK (0..1) is the share of successful requests (status < 400) logged.
func Open(path, edge string, format Format, sampleOK float64) (*Logger, error) {
	if sampleOK < 0 || sampleOK > 1 {
		return nil, errors.New("--access-log-sample-ok must be between 0 and 1")
	}
	l := newLogger(edge, format, sampleOK, pendingLimit)
	if path != "-" {
		l.path = path
	}
	if err := l.Reopen(); err != nil {
		return nil, err
	}
	go l.write(FlushInterval)
	return l, nil
}

func newLogger(edge string, format Format, sampleOK float64, limit int) *Logger {
	return &Logger{edge: edge, format: format, sampleOK: sampleOK, limit: limit,
		pending: make([]byte, 0, min(limit, 64<<10)), stop: make(chan struct{}), done: make(chan struct{})}
}

// Reopen opens the log file again (after logrotate moved it away); lines still
// pending go to the new file.
func (l *Logger) Reopen() error {
	if l == nil {
		return nil
	}
	var out io.WriteCloser = nopCloser{os.Stdout}
	if l.path != "" {
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("access log: %w", err)
		}
		out = f
	}
	l.outMu.Lock()
	defer l.outMu.Unlock()
	if l.out != nil {
		_ = l.out.Close()
	}
	l.out = out
	return nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Dropped counts lines dropped because the writer was behind.
func (l *Logger) Dropped() uint64 {
	if l == nil {
		return 0
	}
	return l.dropped.Load()
}

// Log writes r's line, unless r is a successful request left out by sampling. It
// never blocks on I/O.
func (l *Logger) Log(r *Record) {
	if l == nil {
		return
	}
	ok := r.Status < 400 && r.StreamEnd != StreamFailed && r.StreamEnd != StreamShutdown
	if ok && l.sampleOK < 1 && (l.sampleOK == 0 || rand.Float64() >= l.sampleOK) {
		return
	}
	bp := scratch.Get().(*[]byte)
	line := (*bp)[:0]
	if l.format == Logfmt {
		line = l.appendLogfmt(line, r)
	} else {
		line = l.appendJSON(line, r)
	}
	l.mu.Lock()
	if len(l.pending)+len(line) <= l.limit {
		l.pending = append(l.pending, line...)
	} else {
		l.dropped.Add(1)
	}
	l.mu.Unlock()
	*bp = line
	scratch.Put(bp)
}

// write writes what is pending every interval, until Close.
func (l *Logger) write(interval time.Duration) {
	defer close(l.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	var batch []byte // the writer's buffer, swapped with pending
	for {
		select {
		case <-t.C:
			batch = l.flush(batch)
		case <-l.stop:
			l.flush(batch)
			return
		}
	}
}

// flush takes the pending lines, handing batch over to collect the next ones, and
// writes them; it returns the buffer it wrote for the next swap.
func (l *Logger) flush(batch []byte) []byte {
	l.mu.Lock()
	batch, l.pending = l.pending, batch[:0]
	l.mu.Unlock()
	if len(batch) > 0 {
		l.outMu.Lock()
		_, _ = l.out.Write(batch) // nowhere to report a failing log; the lines are lost
		l.outMu.Unlock()
	}
	return batch
}

// Close writes what is pending and closes the file. Log must not be called after.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	close(l.stop)
	<-l.done
	l.outMu.Lock()
	defer l.outMu.Unlock()
	return l.out.Close()
}

func (l *Logger) appendJSON(b []byte, r *Record) []byte {
	b = append(b, `{"time":"`...)
	b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","request_id":"`...)
	b = append(b, r.RequestID...) // safe characters only: checked or made by the edge
	b = append(b, `","edge":`...)
	b = jsonscan.AppendString(b, l.edge)
	b = appendJSONField(b, "key", r.Key)
	b = appendJSONField(b, "model", r.Model)
	b = appendJSONField(b, "backend", r.Backend)
	b = append(b, `,"attempts":[`...)
	for i := range min(r.NAttempts, MaxAttempts) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"backend":`...)
		b = jsonscan.AppendString(b, r.Attempts[i].Backend)
		b = append(b, `,"outcome":"`...)
		b = append(b, r.Attempts[i].Outcome...)
		b = append(b, `"}`...)
	}
	b = append(b, ']')
	if r.NAttempts > MaxAttempts {
		b = append(b, `,"attempts_total":`...)
		b = strconv.AppendInt(b, int64(r.NAttempts), 10)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, int64(r.BytesIn), 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, r.BytesOut, 10)
	b = append(b, `,"duration_ms":`...)
	b = appendMillis(b, r.Duration)
	if r.TTFT > 0 {
		b = append(b, `,"ttft_ms":`...)
		b = appendMillis(b, r.TTFT)
	}
	if r.InputTokens >= 0 {
		b = append(b, `,"input_tokens":`...)
		b = strconv.AppendInt(b, r.InputTokens, 10)
	}
	if r.OutputTokens >= 0 {
		b = append(b, `,"output_tokens":`...)
		b = strconv.AppendInt(b, r.OutputTokens, 10)
	}
	b = appendJSONField(b, "stream_end", r.StreamEnd)
	if r.Client != nil {
		b = append(b, `,"client":"`...)
		b = appendAddr(b, r.Client)
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}

func appendJSONField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return jsonscan.AppendString(b, v)
}

func (l *Logger) appendLogfmt(b []byte, r *Record) []byte {
	b = append(b, "time="...)
	b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, " request_id="...)
	b = append(b, r.RequestID...)
	b = appendLogfmtField(b, "edge", l.edge)
	b = appendLogfmtField(b, "key", r.Key)
	b = appendLogfmtField(b, "model", r.Model)
	b = appendLogfmtField(b, "backend", r.Backend)
	if r.NAttempts > 0 {
		b = append(b, " attempts="...)
		for i := range min(r.NAttempts, MaxAttempts) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendLogfmtValue(b, r.Attempts[i].Backend)
			b = append(b, ':')
			b = append(b, r.Attempts[i].Outcome...)
		}
	}
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, " bytes_in="...)
	b = strconv.AppendInt(b, int64(r.BytesIn), 10)
	b = append(b, " bytes_out="...)
	b = strconv.AppendInt(b, r.BytesOut, 10)
	b = append(b, " duration_ms="...)
	b = appendMillis(b, r.Duration)
	if r.TTFT > 0 {
		b = append(b, " ttft_ms="...)
		b = appendMillis(b, r.TTFT)
	}
	if r.InputTokens >= 0 {
		b = append(b, " input_tokens="...)
		b = strconv.AppendInt(b, r.InputTokens, 10)
	}
	if r.OutputTokens >= 0 {
		b = append(b, " output_tokens="...)
		b = strconv.AppendInt(b, r.OutputTokens, 10)
	}
	b = appendLogfmtField(b, "stream_end", r.StreamEnd)
	if r.Client != nil {
		b = append(b, " client="...)
		b = appendAddr(b, r.Client)
	}
	return append(b, '\n')
}

func appendLogfmtField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, '=')
	return appendLogfmtValue(b, v)
}

// appendLogfmtValue writes v bare when it needs no quoting, else as a JSON string
// (logfmt's quoting).
func appendLogfmtValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c == '=' || c == '"' || c >= 0x7f {
			return jsonscan.AppendString(b, v)
		}
	}
	return append(b, v...)
}

// appendAddr writes a client's IP address (its port says nothing worth a log column).
func appendAddr(b []byte, a net.Addr) []byte {
	if t, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(t.IP); ok {
			return ip.Unmap().AppendTo(b)
		}
	}
	return append(b, a.String()...)
}

// appendMillis writes d in milliseconds with microsecond precision.
func appendMillis(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
}
