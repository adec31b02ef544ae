package proxy

import (
	"errors"
	"sync"
)

// errShuttingDown ends the streams still open when the edge's drain time is up.
var errShuttingDown = errors.New("the edge is shutting down")

// inFlight holds the streams open now, so that a drain that runs out of time can end
// each with an error event instead of cutting it. A stream is in the set while its
// upstream connection is its own: from the moment it has one until closeUpstream.
type inFlight struct {
	mu          sync.Mutex
	streams     map[*stream]struct{}
	interrupted bool
	// unfinished counts the streams added and not yet released: a stream leaves
	// streams when its upstream connection is given up, but settles its usage and
	// writes its access-log line after that, and a drain must not end the process
	// before it has.
	unfinished int
}

// add puts st in the set; after Interrupt, st is interrupted at once.
func (f *inFlight) add(st *stream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.streams == nil {
		f.streams = make(map[*stream]struct{})
	}
	f.streams[st] = struct{}{}
	f.unfinished++
	if f.interrupted {
		st.conn.interrupt()
	}
}

func (f *inFlight) remove(st *stream) {
	f.mu.Lock()
	delete(f.streams, st)
	f.mu.Unlock()
}

// finished counts an added stream out once it is released.
func (f *inFlight) finished() {
	f.mu.Lock()
	f.unfinished--
	f.mu.Unlock()
}

// Streams counts the streams not yet ended: still relaying, or still settling their
// usage and writing their access-log line.
func (h *Handler) Streams() int {
	h.open.mu.Lock()
	defer h.open.mu.Unlock()
	return h.open.unfinished
}

// Interrupt ends every stream open now, and any opened later, for shutdown: one that
// has sent content ends with an SSE error event saying the edge is shutting down, one
// that has not answers 503 with that error, and neither counts against its backend.
// It returns how many streams it interrupted.
func (h *Handler) Interrupt() int {
	f := &h.open
	f.mu.Lock()
	defer f.mu.Unlock()
	f.interrupted = true
	for st := range f.streams {
		st.conn.interrupt()
	}
	return len(f.streams)
}
