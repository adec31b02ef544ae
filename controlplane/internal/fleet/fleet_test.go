package fleet

import "testing"

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
