package backends

import (
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/breaker"
	"github.com/berry-gateway/berry/pkg/config"
)

func TestApplyScores(t *testing.T) {
	var r Registry
	a, b := config.BackendKey{Provider: "p1", Model: "m"}, config.BackendKey{Provider: "p2", Model: "m"}
	st := r.Sync([]Route{{"x", a}, {"x", b}}, []string{"x"}, 3, time.Minute).States
	now := time.Now()
	scores := []Score{
		{Key: a, Latency: 0.3, ProbeOwner: "me", Probed: true, ProbeHealthy: false},
		{Key: b, Latency: 0.1, Down: true, ProbeOwner: "other", Probed: true, ProbeHealthy: false},
	}
	r.ApplyScores(scores, "me", now, now.Add(time.Second))
	if got := st[0].Latency.Latency(now); got != 0.3 {
		t.Fatalf("unmeasured backend's latency = %v, want the fleet's 0.3", got)
	}
	if !st[0].ProbeHealthy() {
		t.Fatal("this edge's own probe result was overwritten by the fleet's copy of it")
	}
	if st[1].ProbeHealthy() || st[1].ProbeError() == "" {
		t.Fatal("the probe owner's failure was not taken over")
	}
	if !st[1].FleetDown() || st[1].Breaker.State(now) != breaker.Open {
		t.Fatalf("fleet down mark: FleetDown %v, breaker %v; want the local breaker open", st[1].FleetDown(), st[1].Breaker.State(now))
	}
	// The local breaker recovers on its own: its half-open trial succeeds.
	later := now.Add(2 * time.Minute)
	tk, ok := st[1].Breaker.Acquire(later)
	if !ok {
		t.Fatal("no half-open trial after the breaker timeout")
	}
	st[1].Breaker.Success(tk)
	if st[1].Breaker.State(later) != breaker.Closed {
		t.Fatal("a successful trial did not close the breaker")
	}

	// The control plane goes away: local estimates only.
	r.ClearFleet()
	if st[0].Latency.Latency(now) != 0 || st[1].FleetDown() {
		t.Fatal("fleet state survived ClearFleet")
	}
}
