package fleet

import (
	"fmt"
	"testing"
	"time"
)

func TestRegistry(t *testing.T) {
	var r Registry
	dc1 := r.Connect(Edge{ID: "e1", AppliedVersion: 3})
	dc2 := r.Connect(Edge{ID: "e2"})
	r.Ack("e2", 4, true, "")
	if r.RolledOut(4) {
		t.Fatal("RolledOut(4) with e1 at 3")
	}
	r.Ack("e1", 4, false, "bad provider")
	if got := r.List()[0]; got.ID != "e1" || got.LastNack != "bad provider" || got.AppliedVersion != 3 {
		t.Fatalf("e1 after NACK = %+v", got)
	}
	r.Ack("e1", 4, true, "")
	if !r.RolledOut(4) {
		t.Fatal("RolledOut(4) false after both ACKed")
	}

	// A reconnect takes over; the old stream's disconnect must not mark it gone.
	dc1b := r.Connect(Edge{ID: "e1", AppliedVersion: 4})
	dc1()
	for _, e := range r.List() {
		if e.ID == "e1" && !e.Connected {
			t.Fatal("old session's disconnect marked the new one disconnected")
		}
	}
	dc1b()
	dc2()
	for _, e := range r.List() {
		if e.Connected {
			t.Fatalf("%s still connected", e.ID)
		}
	}
	if !r.RolledOut(99) {
		t.Fatal("RolledOut with no connected edges should be vacuously true")
	}
}

// clock is a settable time source for the registry.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func edgeOf(r *Registry, id string) *Edge {
	for _, e := range r.List() {
		if e.ID == id {
			return &e
		}
	}
	return nil
}

func TestLastSeenMovesOnEveryMessage(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	r := Registry{now: c.now}
	r.Connect(Edge{ID: "e1"})
	c.advance(time.Minute)
	r.Seen("e1") // an observation batch, no ACK
	if got := edgeOf(&r, "e1").LastSeen; !got.Equal(c.t) {
		t.Fatalf("LastSeen %v after a message at %v", got, c.t)
	}
	r.Seen("unknown") // no entry made for an edge that never connected
	if edgeOf(&r, "unknown") != nil {
		t.Fatal("Seen made an entry")
	}
}

func TestDisconnectedEdgesExpire(t *testing.T) {
	tests := []struct {
		name   string
		expiry time.Duration
		gone   time.Duration // how long e1 has been disconnected
		wantE1 bool
	}{
		{"kept before the expiry", time.Hour, time.Hour - time.Second, true},
		{"forgotten at the expiry", time.Hour, time.Hour, false},
		{"kept forever with no expiry", 0, 1000 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1000, 0)}
			r := Registry{Expiry: tt.expiry, now: c.now}
			r.Connect(Edge{ID: "e1"})()
			r.Connect(Edge{ID: "e2"}) // stays connected: never expires
			c.advance(tt.gone)
			if got := edgeOf(&r, "e1") != nil; got != tt.wantE1 {
				t.Fatalf("e1 listed %v, want %v", got, tt.wantE1)
			}
			if edgeOf(&r, "e2") == nil {
				t.Fatal("a connected edge expired")
			}
		})
	}
}

// Connect forgets expired edges too, so ids that never come back do not pile up
// even when nobody lists the fleet.
func TestConnectPrunes(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	r := Registry{Expiry: time.Hour, now: c.now}
	for i := range 100 {
		r.Connect(Edge{ID: fmt.Sprintf("pod-%d", i)})()
		c.advance(2 * time.Minute)
	}
	r.mu.Lock()
	n := len(r.edges)
	r.mu.Unlock()
	// Edges disconnected within the last hour, plus at most a minute of pruning lag.
	if n > 32 {
		t.Fatalf("%d edges kept; want those of the last hour only", n)
	}
}
