package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/edge/internal/accesslog"
	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/quota"
	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/provider"
	"github.com/berry-gateway/berry/pkg/sse"
)

const readChunk = 4 << 10

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
	conn *perReadConn // the upstream connection, when the edge can interrupt it
	span
	tr      provider.StreamTranslator
	modelID string
	// in is the client's format: how what is sent is classified, and the shape of a
	// failure event.
	in inbound

	buf     []byte // read from upstream, not yet sent (passthrough) or not yet parsed
	out     []byte // translated events not yet sent
	scratch []byte
	tail    []byte   // the end of what was sent, for finish
	client  net.Conn // the client's connection, for write deadlines

	phase   int
	ending  []byte // what came with the end of the upstream body, not yet sent
	unread  []byte // for Read: the part of the last chunk not yet read
	outcome outcome
	err     error // why the stream failed

	// rec is the request's access-log record, which the stream writes when it ends
	// (the request's own is back in its pool by then); recID holds its request id.
	rec   accesslog.Record
	recID []byte
	usage jsonscan.Usage
	sent  int64 // bytes written to the client
	// trace is the request's span, which the stream ends; model is the model the
	// upstream named in its first events, for it.
	trace traced
	model []byte
	// metered settles the request's usage when the stream ends. strip: the edge asked
	// the upstream for the usage chunk the client did not ask for, and takes it out
	// of what is relayed (its usage goes to usage).
	metered metered
	strip   bool
	// keep is where, in buf, the incomplete event a stripping relay held back starts.
	keep int
}

// outcome is how a stream that reached its end ended.
type outcome uint8

const (
	outcomeNone   outcome = iota // not at its end: the client went away
	outcomeServed                // the upstream's stream ended properly
	outcomeFailed                // it failed after content
)

var streamPool = sync.Pool{New: func() any {
	return &stream{buf: make([]byte, 0, readChunk), recID: make([]byte, 0, maxRequestID)}
}}

// openStream reads a 200 streamed answer up to its first content-bearing event. An
// upstream that reports an error, ends, stalls or times out before that has failed,
// and the caller may try another backend: nothing has reached the client yet. Once
// content arrives, the buffered events are sent and the rest is relayed as it comes.
func (h *Handler) openStream(a *attempt, resp *fasthttp.Response) (failure, bool) {
	r, b, ctx := a.r, a.b, a.r.ctx
	st := streamPool.Get().(*stream)
	st.h, st.resp, st.src, st.span = h, resp, resp.BodyStream(), a.span
	if st.conn = connOf(resp); st.conn != nil {
		h.open.add(st)
	}
	st.modelID = r.model.ID
	st.in = r.in
	switch a.codec {
	case codecOpenAI:
		st.tr = b.Provider.Adapter.NewStream(r.op, r.upstreamModel(b))
	case codecNative:
		st.tr = nil // relayed as the upstream sends it
	case codecMessages:
		st.tr = &chainStream{first: b.Provider.Adapter.NewStream(r.op, r.upstreamModel(b)),
			second: provider.NewChatToMessagesStream("")}
	case codecResponses:
		st.tr = &responseIDStream{id: responseID{model: r.model.ID, provider: b.Provider.ID}, provider: b.Provider}
	case codecResponsesChat:
		st.tr = &chainStream{first: b.Provider.Adapter.NewStream(provider.OpChat, r.upstreamModel(b)),
			second: provider.NewChatToResponsesStream(string(a.translatedResponseID()), r.ctx.Request.Body())}
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
				r.rec.TTFT = now.Sub(r.rec.Time)
				if idle := h.opts.StreamIdleTimeout; idle > 0 {
					setReadTimeout(resp, idle)
				}
				if st.tr != nil {
					// Keep only the unparsed rest; the translated events are in out.
					st.buf = st.buf[:copy(st.buf, st.buf[parsed:])]
				}
				h.startRelay(r, st)
				return failure{}, true
			case kindError, kindDone:
				h.log.Warn("upstream stream failed before content", "request_id", string(r.id), "model", r.model.ID, "provider", b.Provider.ID)
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
			if st.interrupted() {
				// The edge is going away, not the backend: no other backend is tried.
				r.in.writeError(ctx, fasthttp.StatusServiceUnavailable, typeServer, "shutting_down",
					"the edge is shutting down; retry the request")
				st.closeUpstream(errShuttingDown)
				st.endNeutral(backends.ClassError)
				st.release()
				return failure{}, true
			}
			if errors.Is(err, io.EOF) {
				err = errNoContent
			}
			h.log.Warn("upstream stream failed before content", "request_id", string(r.id), "model", r.model.ID, "provider", b.Provider.ID, "err", err)
			st.abort(err)
			return failure{err: err}, false
		}
	}
}

// classify classifies one event in the format the client receives.
func (st *stream) classify(name, data []byte) eventKind {
	switch st.in {
	case inMessages:
		return classifyMessages(name, data)
	case inResponses:
		return classifyResponses(name, data)
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
	if st.conn != nil {
		st.h.open.remove(st) // before the connection may serve another request
	}
	if rc, ok := st.src.(fasthttp.ReadCloserWithError); ok {
		_ = rc.CloseWithError(err)
	} else {
		_ = st.resp.CloseBodyStream()
	}
	fasthttp.ReleaseResponse(st.resp)
	st.resp, st.src = nil, nil
}

// interrupted reports whether the edge's shutdown ended the stream.
func (st *stream) interrupted() bool {
	return st.conn != nil && st.conn.interrupted.Load()
}

func (st *stream) release() {
	if st.conn != nil {
		st.h.open.finished() // its record is written: a drain need not wait for it
	}
	st.h, st.span, st.tr, st.client, st.err, st.conn = nil, span{}, nil, nil, nil, nil
	st.rec, st.recID, st.sent, st.trace, st.model = accesslog.Record{}, st.recID[:0], 0, traced{}, st.model[:0]
	st.metered, st.strip, st.keep = metered{}, false, 0
	st.buf, st.out, st.tail, st.scratch = st.buf[:0], st.out[:0], st.tail[:0], st.scratch[:0]
	st.ending, st.unread, st.outcome, st.phase = nil, nil, outcomeNone, phaseHeld
	streamPool.Put(st)
}

// startRelay answers 200 and hands the rest of the stream to fasthttp as the
// response's body stream. fasthttp writes it on the connection's own goroutine through
// WriteTo, a chunk and a flush per write: no goroutine, pipe or buffer of its own.
// The stream takes the request's access-log record over: it ends after the request.
func (h *Handler) startRelay(r *request, st *stream) {
	ctx := r.ctx
	r.streaming = true
	st.rec = r.rec
	st.recID = append(st.recID[:0], r.id...)
	st.rec.RequestID = st.recID
	st.rec.Backend = st.b.State.Label
	st.span.rec = &st.rec
	st.trace = r.trace
	st.metered = r.metered
	st.metered.key, st.metered.model, st.metered.backend = r.user.ID, r.model, st.b
	r.metered.ticket = quota.Ticket{} // the stream settles it
	st.strip = st.tr == nil && r.fields.AskUsage && !r.fields.IncludeUsage
	st.metered.inputEstimate = -1
	if st.tr == nil && !r.fields.AskUsage && !r.fields.IncludeUsage && r.in == inOpenAI {
		// An OpenAI-format stream nobody asked usage of: the estimate needs the body,
		// which is gone when the stream ends.
		st.metered.inputEstimate = provider.EstimateTokens(ctx.PostBody())
	}
	// What came before the first content: Anthropic's message_start has the input
	// tokens (a translated stream's last chunk carries them again) and the model.
	st.usage = jsonscan.NoUsage
	held := st.buf
	if st.tr != nil {
		held = st.out
	}
	if st.tr == nil && st.in == inMessages { // Anthropic's own stream
		st.scanUsage(held)
	}
	if st.trace.span != nil {
		st.scanModel(held)
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("X-Accel-Buffering", "no") // nginx in front must not buffer
	copyRequestIDs(&ctx.Response.Header, &st.resp.Header)
	st.client = ctx.Conn()
	st.phase = phaseHeld
	ctx.Response.SetBodyStream(st, -1)
}

// The phases of a stream once content flows.
const (
	phaseHeld  = iota // the events read with the first content are still to go out
	phaseRelay        // relaying what the upstream sends
	phaseLast         // the last bytes (closing events or an error event) are out
	phaseEnded        // nothing more to send; the outcome is set
)

// next returns the next bytes for the client, empty once the stream has ended. An
// upstream failure from here on — an error, a stall, or a body that ends before the
// stream's last event — ends the stream with an SSE error event.
func (st *stream) next() []byte {
	for {
		switch st.phase {
		case phaseHeld:
			st.phase = phaseRelay
			if st.tr == nil {
				out := st.buf
				if st.strip {
					out = st.stripUsage(false)
				}
				st.remember(out)
				return out
			}
			// Events read together with the first content have not been translated
			// yet; they may be all there is, with nothing more to read.
			out, err := st.translate()
			if err != nil {
				st.ending = out
				return st.fail(err)
			}
			if len(out) > 0 {
				st.remember(out)
				return out
			}
		case phaseRelay:
			st.reset()
			if len(st.buf) == cap(st.buf) {
				if len(st.buf) >= maxEvent {
					return st.fail(errEventTooLarge) // an event that never ends
				}
				st.buf = append(st.buf, make([]byte, readChunk)...)[:len(st.buf)]
			}
			n, err := st.src.Read(st.buf[len(st.buf):cap(st.buf)])
			st.buf = st.buf[:len(st.buf)+n]
			chunk := st.buf[len(st.buf)-n:]
			if st.strip {
				chunk = st.stripUsage(err != nil)
			}
			if st.tr != nil {
				var terr error
				if chunk, terr = st.translate(); terr != nil {
					err = terr // an in-stream error outranks the end of the body
				}
			}
			switch {
			case err == nil:
			case errors.Is(err, io.EOF):
				st.ending = chunk
				return st.finish()
			default:
				st.ending = chunk
				if st.interrupted() {
					err = errShuttingDown
				}
				return st.fail(err)
			}
			if len(chunk) > 0 {
				st.remember(chunk)
				return chunk
			}
			continue
		case phaseLast:
			st.phase = phaseEnded
		default:
			return nil
		}
	}
}

// reset drops what was sent, keeping an incomplete event to translate (or, when
// stripping, to judge) later.
func (st *stream) reset() {
	switch {
	case st.strip:
		st.buf = st.buf[:copy(st.buf, st.buf[st.keep:])]
		st.out, st.keep = st.out[:0], 0
	case st.tr == nil:
		st.buf = st.buf[:0]
	default:
		st.out = st.out[:0]
	}
}

// stripUsage returns the complete events in buf without the usage-only chunk the
// edge asked for (its usage is kept), and marks the incomplete rest to keep (all of
// it goes at the end of the body: final). Without that chunk in buf, it returns buf's
// bytes as they are, uncopied.
func (st *stream) stripUsage(final bool) []byte {
	b := st.buf
	end := len(b)
	if !final {
		end = completeEvents(b)
	}
	st.keep = end
	if !emptyChoices(b[:end]) {
		return b[:end]
	}
	out := st.out[:0]
	rest := b[:end]
	for len(rest) > 0 {
		ev, next, ok := sse.Next(rest)
		if !ok {
			out = append(out, rest...)
			break
		}
		if emptyChoices(ev) && bytes.Contains(ev, []byte(`"usage"`)) {
			var data []byte
			_, data, st.scratch = sse.Fields(ev, st.scratch)
			if u, ok := jsonscan.ScanUsage(data); ok {
				st.usage.Merge(u)
			}
		} else {
			out = append(out, rest[:next]...)
		}
		rest = rest[next:]
	}
	st.out = out
	return out
}

// completeEvents is the length of b's complete events: up to its last blank line
// ("\n\n" or "\n\r\n"). It reads back from the end, where that line usually is.
func completeEvents(b []byte) int {
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == '\n' && (b[i-1] == '\n' || b[i-1] == '\r' && i > 1 && b[i-2] == '\n') {
			return i + 1
		}
	}
	return 0
}

// emptyChoices reports whether b holds `"choices":[]`, the mark of a usage-only
// chunk. It looks for the rare ']' and checks what precedes it, rather than for the
// needle's first byte, '"', which is everywhere in JSON.
func emptyChoices(b []byte) bool {
	const open = `"choices":[`
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], ']')
		if j < 0 {
			return false
		}
		j += i
		if j >= len(open) && string(b[j-len(open):j]) == open {
			return true
		}
		i = j + 1
	}
}

// remember keeps the last tailSize bytes sent in st.tail: finish judges whether a
// stream relayed as is ended properly (a translated stream's end is the translator's
// to judge), and the usage is read from the last events.
func (st *stream) remember(b []byte) {
	if len(b) >= tailSize {
		st.tail = append(st.tail[:0], b[len(b)-tailSize:]...)
		return
	}
	if keep := tailSize - len(b); len(st.tail) > keep {
		st.tail = st.tail[:copy(st.tail, st.tail[len(st.tail)-keep:])]
	}
	st.tail = append(st.tail, b...)
}

// finish ends a stream whose upstream body ended: after what came with the end
// (st.ending), the translator's closing events, or, relayed as is, a check that the
// upstream's last event was the one that ends its stream ([DONE], or Anthropic's
// message_stop). A body that ended without it was cut short, and the client must not
// see a clean end.
func (st *stream) finish() []byte {
	st.remember(st.ending)
	if st.tr != nil {
		before := len(st.out)
		out, err := st.tr.End(st.out)
		if err != nil {
			return st.fail(err)
		}
		st.out = out
		st.remember(out[before:])
		st.outcome = outcomeServed
		st.phase = phaseLast
		return st.out
	}
	if k := st.lastEvent(); k != kindDone && k != kindError {
		return st.fail(provider.ErrTruncated)
	}
	st.outcome = outcomeServed
	st.phase = phaseLast
	return st.ending
}

// fail ends the stream with an SSE error event in the client's format, after what
// came with the failure (st.ending).
func (st *stream) fail(err error) []byte {
	st.err = err
	st.outcome = outcomeFailed
	st.phase = phaseLast
	ev := append(st.scratch[:0], st.ending...)
	ev = st.appendFailure(ev, err)
	st.scratch = ev
	return ev
}

// WriteTo writes the stream to the client: fasthttp hands it a writer that sends each
// write as one chunk and flushes it. Each write is bounded by the client write
// timeout: a client that stops reading must not hold the stream, the upstream
// connection and the backend's in-flight count for as long as TCP keeps trying.
func (st *stream) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		b := st.next()
		if len(b) == 0 {
			if st.phase == phaseEnded {
				return total, nil
			}
			continue
		}
		st.deadline()
		n, err := w.Write(b)
		total += int64(n)
		st.sent += int64(n)
		if err != nil {
			return total, err
		}
	}
}

// SupportsBodyWriteTo tells fasthttp to use WriteTo rather than Read.
func (st *stream) SupportsBodyWriteTo() bool { return true }

// Read serves the stream to a reader that does not use WriteTo.
func (st *stream) Read(p []byte) (int, error) {
	for len(st.unread) == 0 {
		if st.phase == phaseEnded {
			return 0, io.EOF
		}
		st.unread = st.next()
	}
	st.deadline()
	n := copy(p, st.unread)
	st.unread = st.unread[n:]
	st.sent += int64(n)
	return n, nil
}

func (st *stream) deadline() {
	if st.client != nil {
		_ = st.client.SetWriteDeadline(time.Now().Add(st.h.opts.ClientWriteTimeout))
	}
}

// CloseWithError is called by fasthttp once the response is written (err: why the
// write failed) or dropped. It records the attempt's outcome and frees the stream:
// a stream that did not reach its end lost its client, which closes the upstream
// connection so the upstream stops generating, and says nothing about the backend.
func (st *stream) CloseWithError(err error) error {
	if st.client != nil {
		_ = st.client.SetWriteDeadline(time.Time{}) // the connection may serve the next request
	}
	rec := &st.rec
	switch st.outcome {
	case outcomeServed:
		rec.StreamEnd = accesslog.StreamComplete
		st.closeUpstream(nil)
		st.end(backends.Class2xx, true, sampleNone)
	case outcomeFailed:
		rec.StreamEnd = accesslog.StreamFailed
		st.closeUpstream(st.err)
		if errors.Is(st.err, errShuttingDown) {
			rec.StreamEnd = accesslog.StreamShutdown
			st.endNeutral(backends.ClassError) // the edge's doing, not the backend's
		} else {
			st.h.log.Warn("upstream stream failed after content", "request_id", string(st.rec.RequestID), "model", st.modelID, "provider", st.b.Provider.ID, "err", st.err)
			st.end(backends.ClassError, false, sampleNone)
		}
	default:
		rec.StreamEnd = accesslog.StreamClientGone
		if err == nil {
			err = errClientGone
		}
		st.closeUpstream(err)
		st.endNeutral(backends.Class2xx)
	}
	if st.usage.Input < 0 || st.usage.Output < 0 {
		st.scanUsage(st.tailEvents()) // unless the usage chunk the edge took out had it all
	}
	st.h.settle(&st.metered, st.usage, (st.sent+3)/4)
	if l := st.h.opts.AccessLog; l != nil || st.trace.span != nil {
		rec.Status = fasthttp.StatusOK
		rec.BytesOut = st.sent
		rec.Duration = time.Since(rec.Time)
		rec.InputTokens, rec.OutputTokens = st.usage.Input, st.usage.Output
		l.Log(rec)
		if st.trace.span != nil {
			finishTrace(st.trace, rec.Status, rec.Backend, rec.NAttempts, st.usage, st.model, rec.StreamEnd)
		}
	}
	st.release()
	return nil
}

// scanUsage reads the usage any complete event in b reports.
func (st *stream) scanUsage(b []byte) {
	for len(b) > 0 {
		ev, next, ok := sse.Next(b)
		if !ok {
			return
		}
		b = b[next:]
		if !bytes.Contains(ev, []byte(`"usage"`)) {
			continue
		}
		var data []byte
		_, data, st.scratch = sse.Fields(ev, st.scratch)
		if u, ok := jsonscan.ScanUsage(data); ok {
			st.usage.Merge(u)
		}
	}
}

// scanModel keeps the model the first event of b that names one names.
func (st *stream) scanModel(b []byte) {
	for len(b) > 0 {
		ev, next, ok := sse.Next(b)
		if !ok {
			return
		}
		b = b[next:]
		var data []byte
		_, data, st.scratch = sse.Fields(ev, st.scratch)
		if m := jsonscan.ScanModel(data); m != nil {
			st.model = append(st.model[:0], m...)
			return
		}
	}
}

// tailEvents returns the complete events at the end of what was sent.
func (st *stream) tailEvents() []byte {
	rest := st.tail
	if len(rest) == tailSize {
		// The tail may start inside an event: skip to the first boundary.
		if i := bytes.Index(rest, []byte("\n\n")); i >= 0 {
			return rest[i+2:]
		}
	}
	return rest
}

var errClientGone = errors.New("the client went away")

// tailSize is how much of what was sent finish looks at: enough for the last events,
// [DONE], message_stop or an error, and the usage chunk before them.
const tailSize = 4 << 10

// lastEvent classifies the last complete event of what was relayed (in st.tail): an
// upstream stream ends properly with [DONE] (Anthropic's message_stop), or with an
// error event of its own, which the client has then seen.
func (st *stream) lastEvent() eventKind {
	rest := st.tailEvents()
	var last []byte // the last event with a name or data; only it is classified
	for {
		ev, next, ok := sse.Next(rest)
		if !ok {
			break
		}
		rest = rest[next:]
		var name, data []byte
		name, data, st.scratch = sse.Fields(ev, st.scratch)
		if data != nil || len(name) > 0 {
			last = ev
		}
	}
	if last == nil {
		return kindOther
	}
	var name, data []byte
	name, data, st.scratch = sse.Fields(last, st.scratch)
	return st.classify(name, data)
}

// appendFailure appends the SSE error event that ends a started stream, in the
// client's format (OpenAI's, or Anthropic's "event: error" on /v1/messages). The
// leading blank line terminates whatever partial event the upstream left behind. The
// message names the backend by its config id and says what happened, never where (no
// addresses).
func (st *stream) appendFailure(dst []byte, err error) []byte {
	msg := "the stream from backend " + strconv.Quote(st.b.Key().String()) + " failed after it started: " + describe(err)
	status, typ, code := fasthttp.StatusBadGateway, typeUpstream, "upstream_stream_error"
	if errors.Is(err, errShuttingDown) {
		msg = "the edge is shutting down and ended this stream before its end; retry the request"
		status, typ, code = fasthttp.StatusServiceUnavailable, typeServer, "shutting_down"
	}
	switch st.in {
	case inMessages:
		dst = append(dst, "\n\nevent: error\ndata: "...)
		dst = provider.AppendMessagesError(dst, status, msg)
	case inResponses:
		dst = append(dst, "\n\nevent: error\ndata: "...)
		dst = provider.AppendResponsesError(dst, code, msg)
	default:
		dst = append(dst, "\n\ndata: "...)
		dst = provider.AppendOpenAIError(dst, typ, code, msg)
	}
	return append(dst, "\n\n"...)
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
