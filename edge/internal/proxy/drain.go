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
}

// add puts st in the set; after Interrupt, st is interrupted at once.
func (f *inFlight) add(st *stream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.streams == nil {
		f.streams = make(map[*stream]struct{})
	}
	f.streams[st] = struct{}{}
	if f.interrupted {
		st.conn.interrupt()
	}
}

func (f *inFlight) remove(st *stream) {
	f.mu.Lock()
	delete(f.streams, st)
	f.mu.Unlock()
}

// Streams counts the streams open now.
func (h *Handler) Streams() int {
	h.open.mu.Lock()
	defer h.open.mu.Unlock()
	return len(h.open.streams)
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
