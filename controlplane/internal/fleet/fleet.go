// Package fleet tracks the edges connected to the control plane: who they are, which
// config version each one applied, and their last ACK or NACK. Edges that disconnect
// are forgotten after an expiry, so ephemeral edge ids (pod names) do not pile up.
package fleet

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Edge is what the control plane knows of one edge.
type Edge struct {
	ID             string
	Address        string // where it serves clients, as it reported
	Peer           string // the stream's remote address
	BuildVersion   string
	AppliedVersion uint64
	Connected      bool
	ConnectedSince time.Time
	// LastSeen is when the edge last sent anything, or when its stream closed.
	LastSeen time.Time
	// LastAckVersion and LastNack describe the newest ACK/NACK: LastNack is the
	// reason of a NACK, "" after an ACK.
	LastAckVersion uint64
	LastNack       string
}

// Registry is the set of edges seen. The zero value is ready for use and keeps every
// edge forever.
type Registry struct {
	// Expiry forgets an edge this long after its stream closed, unless it reconnects;
	// 0 keeps every edge. Set it before first use.
	Expiry time.Duration

	mu     sync.Mutex
	edges  map[string]*entry
	now    func() time.Time
	pruned time.Time // the last prune on Connect
}

type entry struct {
	Edge
	session uint64 // which stream owns the entry; a reconnect supersedes the old one
}

var sessionSeq atomic.Uint64

// pruneEvery bounds how often Connect looks for expired edges: a reconnect storm
// must not scan the whole fleet on every connection.
const pruneEvery = time.Minute

// Connect records an edge's stream opening and returns the function that records its
// closing. A second stream with the same id takes the entry over. e carries what the
// edge said of itself: its applied version, and as LastAckVersion that same version
// when it comes from the current data file (the edge ACKed it on an earlier stream,
// and gets no snapshot to ACK on this one).
func (r *Registry) Connect(e Edge) (disconnect func()) {
	id := sessionSeq.Add(1)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.edges == nil {
		r.edges = make(map[string]*entry)
	}
	now := r.clock()
	if r.Expiry > 0 && now.Sub(r.pruned) >= min(pruneEvery, r.Expiry) {
		r.prune(now)
	}
	e.Connected, e.ConnectedSince, e.LastSeen = true, now, now
	r.edges[e.ID] = &entry{Edge: e, session: id}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if cur := r.edges[e.ID]; cur != nil && cur.session == id {
			cur.Connected = false
			cur.LastSeen = r.clock()
		}
	}
}

// Seen records that an edge sent something.
func (r *Registry) Seen(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.edges[id]; e != nil {
		e.LastSeen = r.clock()
	}
}

// Ack records an edge's answer to a snapshot version.
func (r *Registry) Ack(id string, version uint64, accepted bool, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.edges[id]
	if e == nil {
		return
	}
	e.LastSeen = r.clock()
	e.LastAckVersion = version
	if accepted {
		e.LastNack = ""
		if version > e.AppliedVersion {
			e.AppliedVersion = version
		}
	} else {
		e.LastNack = detail
	}
}

// List returns every edge seen and not expired, connected first, then by id.
func (r *Registry) List() []Edge {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prune(r.clock())
	out := make([]Edge, 0, len(r.edges))
	for _, e := range r.edges {
		out = append(out, e.Edge)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Connected != out[j].Connected {
			return out[i].Connected
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// RolledOut reports whether every connected edge has applied version v or newer.
func (r *Registry) RolledOut(v uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.edges {
		if e.Connected && e.AppliedVersion < v {
			return false
		}
	}
	return true
}

// prune forgets the edges disconnected for longer than the expiry. r.mu is held.
func (r *Registry) prune(now time.Time) {
	if r.Expiry <= 0 {
		return
	}
	r.pruned = now
	for id, e := range r.edges {
		if !e.Connected && now.Sub(e.LastSeen) >= r.Expiry {
			delete(r.edges, id)
		}
	}
}

func (r *Registry) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}
