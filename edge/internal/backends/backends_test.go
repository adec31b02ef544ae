package backends

import (
	"testing"
	"time"

	"github.com/berry-gateway/berry/pkg/config"
)

func TestStateSurvivesResync(t *testing.T) {
	var r Registry
	a, b := config.BackendKey{Provider: "p1", Model: "m"}, config.BackendKey{Provider: "p2", Model: "m"}
	st := r.Sync([]Route{{"x", a}, {"x", b}}, []string{"x"}, 1, time.Minute).States
	now := time.Unix(100, 0)
	tk, _ := st[0].Breaker.Acquire(now)
	st[0].Breaker.Failure(tk, now)
	if st[0].Available(now) {
		t.Fatal("breaker with threshold 1 did not open")
	}
	// A new version keeps a, drops b, adds c.
	c := config.BackendKey{Provider: "p3", Model: "m"}
	sy := r.Sync([]Route{{"x", c}, {"x", a}, {"y", a}}, []string{"x", "y"}, 1, time.Minute)
	st2 := sy.States
	if sy.States[2] != sy.States[1] || sy.Routes[2] == sy.Routes[1] {
		t.Fatal("two models sharing a backend must share its state but not its route stats")
	}
	if st2[1] != st[0] {
		t.Fatal("unchanged backend lost its state across a resync")
	}
	if st2[1].Available(now) {
		t.Fatal("open breaker closed by a resync")
	}
	labels := []string{}
	for _, s := range r.States() {
		labels = append(labels, s.Label)
	}
	if len(labels) != 2 || labels[0] != "p1/m" || labels[1] != "p3/m" {
		t.Fatalf("states after resync = %v, want [p1/m p3/m]", labels)
	}
}

func TestAvailability(t *testing.T) {
	now := time.Unix(100, 0)
	tests := []struct {
		name  string
		setup func(s *State)
		want  bool
	}{
		{"fresh", func(*State) {}, true},
		{"probe down", func(s *State) { s.SetProbe(false, "status 500") }, false},
		{"probe recovered", func(s *State) { s.SetProbe(false, "x"); s.SetProbe(true, "") }, true},
		{"held", func(s *State) { s.Hold(now.Add(time.Second)) }, false},
		{"hold over", func(s *State) { s.Hold(now.Add(-time.Second)) }, true},
		{"hold never shortens", func(s *State) { s.Hold(now.Add(time.Minute)); s.Hold(now.Add(-time.Second)) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s State
			tc.setup(&s)
			if got := s.Available(now); got != tc.want {
				t.Fatalf("Available = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestClassOf(t *testing.T) {
	for status, want := range map[int]Class{0: ClassError, 200: Class2xx, 404: Class4xx, 429: Class4xx, 503: Class5xx} {
		if got := ClassOf(status); got != want {
			t.Errorf("ClassOf(%d) = %v, want %v", status, got, want)
		}
	}
}
