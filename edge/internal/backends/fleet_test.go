package backends

import (
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/edge/internal/breaker"
)

func TestObservationsAreDeltas(t *testing.T) {
	var r Registry
	a := Key{"p1", "m"}
	sy := r.Sync([]Route{{"x", a}, {"y", a}}, []string{"x", "y"}, 3, time.Minute)
	now := time.Now()
	sy.Routes[0].Requests[Class2xx].Add(5)
	sy.Routes[1].Requests[Class5xx].Add(2)
	sy.Routes[1].Requests[ClassError].Add(1)
	sy.Routes[1].Requests[Class4xx].Add(4) // the client's fault: not the backend's error
	sy.States[0].Latency.Observe(200*time.Millisecond, now)
	sy.States[0].InFlight.Add(2)

	obs := r.Observations(now)
	if len(obs) != 1 {
		t.Fatalf("%d observations, want one per backend (two models share it)", len(obs))
	}
	o := obs[0]
	if o.Provider != "p1" || o.UpstreamModel != "m" || o.Requests != 12 || o.ServerErrors+o.NoAnswer != 3 || o.Samples != 1 ||
		o.InFlight != 2 || o.LatencySeconds != 0.2 || !o.ProbeHealthy ||
		o.ClientErrors != 4 || o.ServerErrors != 2 || o.NoAnswer != 1 {
		t.Fatalf("first observation = %v", o)
	}
	o = r.Observations(now)[0]
	if o.Requests != 0 || o.ServerErrors+o.NoAnswer != 0 || o.Samples != 0 || o.ClientErrors != 0 || o.LatencySeconds != 0.2 {
		t.Fatalf("second observation = %v, want zero counts and the standing estimate", o)
	}
}

func TestApplyScores(t *testing.T) {
	var r Registry
	a, b := Key{"p1", "m"}, Key{"p2", "m"}
	st := r.Sync([]Route{{"x", a}, {"x", b}}, []string{"x"}, 3, time.Minute).States
	now := time.Now()
	scores := &berryv1.FleetScores{
		Epoch: 1, ProbeOwners: map[string]string{"p1": "me", "p2": "other"},
		Backends: []*berryv1.BackendScore{
			{Provider: "p1", UpstreamModel: "m", LatencySeconds: 0.3, ProbeOwner: "me", Probed: true, ProbeHealthy: false},
			{Provider: "p2", UpstreamModel: "m", LatencySeconds: 0.1, Down: true, ProbeOwner: "other", Probed: true, ProbeHealthy: false},
		},
	}
	r.ApplyScores(scores, "me", now, time.Second)
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
	if !r.ProbeAssigned("p1", now) || r.ProbeAssigned("p2", now) || !r.ProbeAssigned("unknown", now) {
		t.Fatal("probe assignment: want p1 (ours) and unknown providers probed here, p2 not")
	}
	// The local breaker recovers on its own: its half-open trial succeeds.
	later := now.Add(2 * time.Minute)
	if !st[1].Breaker.Acquire(later) {
		t.Fatal("no half-open trial after the breaker timeout")
	}
	st[1].Breaker.Success()
	if st[1].Breaker.State(later) != breaker.Closed {
		t.Fatal("a successful trial did not close the breaker")
	}

	// The control plane goes away: local estimates and probing only.
	r.ClearFleet()
	if st[0].Latency.Latency(now) != 0 || st[1].FleetDown() {
		t.Fatal("fleet state survived ClearFleet")
	}
	if !r.ProbeAssigned("p2", now) {
		t.Fatal("disconnected edge must probe every provider")
	}
	r.AwaitAssignment(now.Add(time.Second))
	if r.ProbeAssigned("p1", now) {
		t.Fatal("connected edge awaiting assignments probed")
	}
	if !r.ProbeAssigned("p1", now.Add(2*time.Second)) {
		t.Fatal("assignments never came, yet the edge still does not probe")
	}
}
