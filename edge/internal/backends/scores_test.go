package backends

import (
	"strings"
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
	if !strings.Contains(st[1].ProbeError(), `edge "other"`) {
		t.Fatal("the probe owner's failure is not shown")
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

// TestRemoteProbeFailureActsLikeTheDownMark: another edge's failed probe takes the
// backend out of rotation here once, through the breaker, and this edge's own trial
// brings it back while that edge still reports the failure.
func TestRemoteProbeFailureActsLikeTheDownMark(t *testing.T) {
	var r Registry
	k := config.BackendKey{Provider: "p", Model: "m"}
	s := r.Sync([]Route{{"x", k}}, []string{"x"}, 3, time.Minute).States[0]
	failed := []Score{{Key: k, ProbeOwner: "other", Probed: true, ProbeHealthy: false}}
	now := time.Now()
	r.ApplyScores(failed, "me", now, now.Add(time.Second))
	if s.Available(now) || s.Breaker.State(now) != breaker.Open {
		t.Fatal("a remote probe failure did not take the backend out of rotation")
	}
	if !s.ProbeHealthy() {
		t.Fatal("a remote verdict must not stand for this edge's own probe")
	}
	later := now.Add(2 * time.Minute)
	if !s.Available(later) {
		t.Fatal("a remote probe failure keeps the backend out past the breaker timeout")
	}
	tk, _ := s.Breaker.Acquire(later)
	s.Breaker.Success(tk)
	r.ApplyScores(failed, "me", later, later.Add(time.Second))
	if s.Breaker.State(later) != breaker.Closed {
		t.Fatal("the same remote failure tripped the breaker again after the local trial succeeded")
	}
	// It recovers, then fails again: that is a new failure, and it trips again.
	r.ApplyScores([]Score{{Key: k, ProbeOwner: "other", Probed: true, ProbeHealthy: true}}, "me", later, later.Add(time.Second))
	r.ApplyScores(failed, "me", later, later.Add(time.Second))
	if s.Breaker.State(later) != breaker.Open {
		t.Fatal("a new remote failure did not trip the breaker")
	}
}
