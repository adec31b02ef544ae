package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/pkg/provider"
	"github.com/berry-gateway/berry/pkg/sse"
)

const readChunk = 16 << 10

// maxBeforeContent bounds what is held back before the first content: an upstream that
// sends megabytes of events without content is failing, not slow.
const maxBeforeContent = 1 << 20

var errTooMuchBeforeContent = errors.New("the upstream sent over 1 MiB before any content")

// maxEvent bounds one stream event once content flows: the relay of a translated
// stream holds an incomplete event until its end arrives.
const maxEvent = 1 << 20

var errEventTooLarge = errors.New("the upstream sent an event over 1 MiB")

// stream is one streamed answer in flight, pooled: it outlives the handler call, as
// fasthttp runs the body writer after the handler returns, so it keeps what it needs
// of the request and never the pooled request itself.
type stream struct {
	h    *Handler
	resp *fasthttp.Response
	src  io.Reader
	span
	tr      provider.StreamTranslator
	modelID string
	// messages: the client speaks Anthropic's stream format (classification of what
	// is sent, and the shape of a failure event).
	messages bool

	buf     []byte // read from upstream, not yet sent (passthrough) or not yet parsed
	out     []byte // translated events not yet sent
	scratch []byte
	tail    []byte   // the end of what was sent, for finish
	client  net.Conn // the client's connection, for write deadlines
	// relayFn is relay bound once, so handing it to fasthttp does not allocate.
	relayFn func(*bufio.Writer)
}

var streamPool sync.Pool

func init() {
	// Set in init: New refers to relay, which puts streams back into the pool.
	streamPool.New = func() any {
		st := &stream{buf: make([]byte, 0, readChunk), out: make([]byte, 0, 4<<10)}
		st.relayFn = st.relay
		return st
	}
}

// openStream reads a 200 streamed answer up to its first content-bearing event. An
// upstream that reports an error, ends, stalls or times out before that has failed,
// and the caller may try another backend: nothing has reached the client yet. Once
// content arrives, the buffered events are sent and the rest is relayed as it comes.
func (h *Handler) openStream(a *attempt, resp *fasthttp.Response) (failure, bool) {
	r, b, ctx := a.r, a.b, a.r.ctx
	st := streamPool.Get().(*stream)
	st.h, st.resp, st.src, st.span = h, resp, resp.BodyStream(), a.span
	st.modelID = r.model.ID
	st.messages = a.codec != codecOpenAI
	switch a.codec {
	case codecOpenAI:
		st.tr = b.Provider.Adapter.NewStream(r.op, b.UpstreamModel)
	case codecNative:
		st.tr = nil // relayed as the upstream sends it
	case codecMessages:
		st.tr = &chainStream{first: b.Provider.Adapter.NewStream(r.op, b.UpstreamModel),
			second: provider.NewChatToMessagesStream(r.clientModel())}
	}
	start := a.start
	deadline := start.Add(b.Provider.Timeout)

	parsed := 0
	for {
		// Examine every complete event read so far.
		for {
			ev, next, ok := sse.Next(st.buf[parsed:])
			if !ok {
				break
			}
			parsed += next
			var name, data []byte
			name, data, st.scratch = sse.Fields(ev, st.scratch)
			kind := kindOther
			if st.tr != nil {
				before := len(st.out)
				var err error
				if st.out, err = st.tr.Event(name, data, st.out); err != nil {
					kind = kindError
					var pe *provider.Error
					if errors.As(err, &pe) {
						// The translator classified the upstream's error: answer it with
						// its status if every backend fails, and do not try another
						// backend for an error that is the request's own.
						r.in.writeError(ctx, pe.Status, pe.Type, pe.Code, pe.Message)
						if !retryable(pe.Status) {
							// The backend is fine; the request is not.
							st.closeUpstream(errNoContent)
							st.end(backends.ClassOf(pe.Status), true, sampleNone)
							st.release()
							return failure{}, true
						}
						st.abort(errNoContent)
						return failure{status: pe.Status}, false
					}
				} else if cs, ok := st.tr.(*chainStream); ok {
					kind = cs.kind
				} else {
					kind = st.classifyOutput(st.out[before:])
				}
			} else {
				kind = st.classify(name, data)
			}
			switch kind {
			case kindContent:
				now := time.Now()
				b.State.FirstToken.Observe(now.Sub(start))
				b.State.Latency.ObserveFirstToken(now.Sub(start), now)
				if idle := h.opts.StreamIdleTimeout; idle > 0 {
					setReadTimeout(resp, idle)
				}
				if st.tr != nil {
					// Keep only the unparsed rest; the translated events are in out.
					st.buf = st.buf[:copy(st.buf, st.buf[parsed:])]
				}
				h.startRelay(ctx, st)
				return failure{}, true
			case kindError, kindDone:
				h.log.Warn("upstream stream failed before content", "model", r.model.ID, "provider", b.Provider.ID)
				if kind == kindError && st.tr == nil && len(data) > 0 && data[0] == '{' {
					// The upstream's own error object is the most useful answer if every
					// backend fails.
					ctx.Response.Reset()
					ctx.SetStatusCode(fasthttp.StatusBadGateway)
					ctx.SetContentType("application/json")
					ctx.Response.SetBody(data)
					st.abort(errNoContent)
					return failure{status: fasthttp.StatusBadGateway}, false
				}
				st.abort(errNoContent)
				return failure{err: errNoContent}, false
			}
		}
		var err error
		switch {
		case time.Now().After(deadline):
			err = errFirstByteTimeout
		case len(st.buf)+len(st.out) > maxBeforeContent:
			err = errTooMuchBeforeContent
		}
		n := 0
		if err == nil {
			if len(st.buf) == cap(st.buf) {
				st.buf = append(st.buf, make([]byte, readChunk)...)[:len(st.buf)]
			}
			n, err = st.src.Read(st.buf[len(st.buf):cap(st.buf)])
			st.buf = st.buf[:len(st.buf)+n]
		}
		if err != nil && n == 0 {
			if errors.Is(err, io.EOF) {
				err = errNoContent
			}
			h.log.Warn("upstream stream failed before content", "model", r.model.ID, "provider", b.Provider.ID, "err", err)
			st.abort(err)
			return failure{err: err}, false
		}
	}
}

// classify classifies one event in the format the client receives.
func (st *stream) classify(name, data []byte) eventKind {
	if st.messages {
		return classifyMessages(name, data)
	}
	return classify(name, data)
}

// classifyOutput classifies translated output (zero or more SSE events in the
// client's format).
func (st *stream) classifyOutput(out []byte) eventKind {
	kind := kindOther
	for len(out) > 0 {
		ev, next, ok := sse.Next(out)
		if !ok {
			break
		}
		out = out[next:]
		name, data, _ := sse.Fields(ev, st.scratch)
		if k := st.classify(name, data); k > kind {
			kind = k
		}
	}
	return kind
}

// abort ends an attempt that failed before any byte reached the client.
func (st *stream) abort(err error) {
	st.closeUpstream(err)
	if (failure{err: err}).timeout() {
		st.endTimeout(sampleFirstToken)
	} else {
		st.end(backends.ClassError, false, sampleFirstToken)
	}
	st.release()
}

func (st *stream) closeUpstream(err error) {
	if rc, ok := st.src.(fasthttp.ReadCloserWithError); ok {
		_ = rc.CloseWithError(err)
	} else {
		_ = st.resp.CloseBodyStream()
	}
	fasthttp.ReleaseResponse(st.resp)
	st.resp, st.src = nil, nil
}

func (st *stream) release() {
	st.h, st.span, st.tr, st.client = nil, span{}, nil, nil
	st.buf, st.out, st.tail = st.buf[:0], st.out[:0], st.tail[:0]
	streamPool.Put(st)
}

// startRelay answers 200 and hands the rest of the stream to fasthttp's body writer.
func (h *Handler) startRelay(ctx *fasthttp.RequestCtx, st *stream) {
	ctx.Response.Reset()
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("X-Accel-Buffering", "no") // nginx in front must not buffer
	copyRequestIDs(&ctx.Response.Header, &st.resp.Header)
	st.client = ctx.Conn()
	ctx.SetBodyStreamWriter(st.relayFn)
}

// relay writes what was buffered before the first content, then relays the rest read
// by read with a flush after each, never holding data back. An upstream failure from
// here on — an error, a stall, or a body that ends before the stream's last event —
// ends the stream with an SSE error event; a client that goes away, or stops reading
// for longer than the client write timeout, closes the upstream connection, which
// cancels the upstream request.
func (st *stream) relay(w *bufio.Writer) {
	h := st.h
	defer func() {
		// Runs in fasthttp's body-writer goroutine: a panic here would end the process.
		if p := recover(); p != nil {
			h.log.Error("stream relay panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	pending := st.buf
	var failErr, clientErr error
	if st.tr != nil {
		// Events read together with the first content have not been translated yet;
		// they may be all there is, with nothing more to read.
		pending, failErr = st.translate()
	}
	clientErr = st.send(w, pending)
	for clientErr == nil && failErr == nil {
		if len(st.buf) == cap(st.buf) {
			if len(st.buf) >= maxEvent {
				failErr = errEventTooLarge // an event that never ends
				break
			}
			st.buf = append(st.buf, make([]byte, readChunk)...)[:len(st.buf)]
		}
		n, err := st.src.Read(st.buf[len(st.buf):cap(st.buf)])
		st.buf = st.buf[:len(st.buf)+n]
		if n > 0 {
			chunk := st.buf
			if st.tr != nil {
				var terr error
				chunk, terr = st.translate()
				if terr != nil {
					err = terr // an in-stream error outranks the end of the body
				}
			}
			clientErr = st.send(w, chunk)
		}
		switch {
		case clientErr != nil:
		case errors.Is(err, io.EOF):
			failErr = st.finish(w)
		case err != nil:
			failErr = err
		}
		if err != nil {
			break
		}
	}
	if failErr != nil && clientErr == nil {
		st.writeFailure(w, failErr)
	}
	if st.client != nil {
		_ = st.client.SetWriteDeadline(time.Time{}) // the connection may serve the next request
	}
	switch {
	case clientErr != nil:
		// The client went away: close the upstream connection so the upstream stops
		// generating; that says nothing about the backend's health.
		st.closeUpstream(clientErr)
		st.endNeutral(backends.Class2xx)
	case failErr != nil:
		st.closeUpstream(failErr)
		st.end(backends.ClassError, false, sampleNone)
	default:
		st.closeUpstream(nil)
		st.end(backends.Class2xx, true, sampleNone)
	}
	st.release()
}

// send writes b to the client and flushes it, each write bounded by the client write
// timeout: a client that stops reading must not hold the stream, the upstream
// connection and the backend's in-flight count for as long as TCP keeps trying.
// What was sent is kept in st.tail, for finish.
func (st *stream) send(w *bufio.Writer, b []byte) error {
	if len(b) > 0 {
		st.tail = append(st.tail, b[max(len(b)-tailSize, 0):]...)
		st.tail = st.tail[max(len(st.tail)-tailSize, 0):]
	}
	if st.client != nil {
		if err := st.client.SetWriteDeadline(time.Now().Add(st.h.opts.ClientWriteTimeout)); err != nil {
			return err
		}
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	if st.tr == nil {
		st.buf = st.buf[:0]
	} else {
		st.out = st.out[:0]
	}
	return w.Flush()
}

// tailSize is how much of what was sent finish looks at: enough for the last event,
// [DONE], message_stop or an error.
const tailSize = 1 << 10

// finish ends a stream whose upstream body ended: with the translator's closing
// events, or, relayed as is, after checking that the upstream's last event was the
// one that ends its stream ([DONE], or Anthropic's message_stop). A body that ended
// without it was cut short, and the client must not see a clean end.
func (st *stream) finish(w *bufio.Writer) error {
	if st.tr != nil {
		out, err := st.tr.End(st.out[:0])
		if err != nil {
			return err
		}
		return st.send(w, out)
	}
	if k := st.lastEvent(); k != kindDone && k != kindError {
		return provider.ErrTruncated
	}
	return nil
}

// lastEvent classifies the last complete event of what was relayed (in st.tail): an
// upstream stream ends properly with [DONE] (Anthropic's message_stop), or with an
// error event of its own, which the client has then seen.
func (st *stream) lastEvent() eventKind {
	rest := st.tail
	if len(st.tail) == tailSize {
		// The tail may start inside an event: skip to the first boundary.
		if i := bytes.Index(rest, []byte("\n\n")); i >= 0 {
			rest = rest[i+2:]
		}
	}
	last := kindOther
	for {
		ev, next, ok := sse.Next(rest)
		if !ok {
			return last
		}
		rest = rest[next:]
		var name, data []byte
		name, data, st.scratch = sse.Fields(ev, st.scratch)
		if data != nil || len(name) > 0 {
			last = st.classify(name, data)
		}
	}
}

// writeFailure ends a started stream with an SSE error event in the client's format
// (OpenAI's, or Anthropic's "event: error" on /v1/messages). The leading blank line
// terminates whatever partial event the upstream left behind. The message names the
// backend by its config id and says what happened, never where (no addresses).
func (st *stream) writeFailure(w *bufio.Writer, err error) {
	st.h.log.Warn("upstream stream failed after content", "model", st.modelID, "provider", st.b.Provider.ID, "err", err)
	msg := "the stream from backend " + strconv.Quote(st.b.Key().String()) + " failed after it started: " + describe(err)
	var ev []byte
	if st.messages {
		ev = append(st.out[:0], "\n\nevent: error\ndata: "...)
		ev = provider.AppendMessagesError(ev, fasthttp.StatusBadGateway, msg)
	} else {
		ev = append(append(st.out[:0], "\n\ndata: "...), provider.AppendOpenAIError(nil, typeUpstream, "upstream_stream_error", msg)...)
	}
	_ = st.send(w, append(ev, "\n\n"...))
}

// describe says what went wrong with an upstream in words a client may see: the
// upstream's own error message when it sent one, else the kind of failure — never
// the network error's text, which carries internal addresses.
func describe(err error) string {
	var pe *provider.Error
	switch {
	case errors.As(err, &pe):
		return pe.Message
	case (failure{err: err}).timeout():
		return "no data within the timeout"
	case errors.Is(err, errEventTooLarge), errors.Is(err, errTooMuchBeforeContent):
		return err.Error()
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the connection ended early"
	}
	return "the connection failed"
}

// translate parses complete events in st.buf through the translator, keeping an
// incomplete tail in st.buf, and returns the translated bytes.
func (st *stream) translate() ([]byte, error) {
	parsed := 0
	var err error
	for {
		ev, next, ok := sse.Next(st.buf[parsed:])
		if !ok {
			break
		}
		parsed += next
		var name, data []byte
		name, data, st.scratch = sse.Fields(ev, st.scratch)
		if st.out, err = st.tr.Event(name, data, st.out); err != nil {
			break
		}
	}
	st.buf = st.buf[:copy(st.buf, st.buf[parsed:])]
	return st.out, err
}
