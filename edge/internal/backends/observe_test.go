package backends

import (
	"testing"
	"time"

	"github.com/berry-gateway/berry/pkg/config"
)

func TestObservationsAreDeltas(t *testing.T) {
	var r Registry
	a := config.BackendKey{Provider: "p1", Model: "m"}
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
	if o.Key != a || o.Requests() != 12 || o.Attempts[Class5xx]+o.Attempts[ClassError] != 3 || o.Samples != 1 ||
		o.InFlight != 2 || o.Latency != 0.2 || !o.ProbeHealthy ||
		o.Attempts[Class4xx] != 4 || o.Attempts[Class5xx] != 2 || o.Attempts[ClassError] != 1 {
		t.Fatalf("first observation = %+v", o)
	}
	o = r.Observations(now)[0]
	if o.Requests() != 0 || o.Attempts[Class5xx]+o.Attempts[ClassError] != 0 || o.Samples != 0 || o.Attempts[Class4xx] != 0 || o.Latency != 0.2 {
		t.Fatalf("second observation = %+v, want zero counts and the standing estimate", o)
	}
}
