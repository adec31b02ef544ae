package latency

import (
	"math"
	"testing"
	"time"
)

func TestFleetBlend(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name    string
		own     int // samples of 100ms taken just before now
		fleet   float64
		expires time.Time
		want    float64
	}{
		{name: "no fleet score: local only", own: 3, want: 0.1},
		{name: "no own sample: fleet only", fleet: 0.4, expires: now.Add(time.Second), want: 0.4},
		{name: "expired fleet score is ignored", own: 3, fleet: 0.4, expires: now, want: 0.1},
		{name: "FleetPrior own samples: half and half", own: FleetPrior, fleet: 0.3, expires: now.Add(time.Second), want: 0.2},
		{name: "plentiful own samples win", own: 100, fleet: 0.5, expires: now.Add(time.Second), want: (100*0.1 + FleetPrior*0.5) / (100 + FleetPrior)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Estimator
			for range tt.own {
				e.Observe(100*time.Millisecond, now)
			}
			e.SetFleet(tt.fleet, 0, tt.expires)
			if got := e.Latency(now); math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("Latency = %v, want %v", got, tt.want)
			}
			if got := e.TakeSamples(); got != uint32(tt.own) {
				t.Fatalf("TakeSamples = %d, want %d", got, tt.own)
			}
			if got := e.TakeSamples(); got != 0 {
				t.Fatalf("second TakeSamples = %d, want 0", got)
			}
			if tt.own > 0 && e.LocalLatency(now) != 0.1 {
				t.Fatalf("LocalLatency = %v, want the local 0.1 whatever the fleet says", e.LocalLatency(now))
			}
		})
	}
}

// Own samples lose weight as they age, so a quiet edge drifts back to the fleet's view.
func TestOwnWeightDecays(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var e Estimator
	e.Stale = time.Hour
	for range 50 {
		e.Observe(100*time.Millisecond, now)
	}
	later := now.Add(10 * DefaultDecay)
	e.SetFleet(0.5, 0.2, later.Add(time.Second))
	if got := e.Latency(later); got < 0.49 {
		t.Fatalf("after 10 decay constants the blend is %v; the fleet's 0.5 should dominate", got)
	}
	if got := e.FirstToken(later); got != 0.2 {
		t.Fatalf("FirstToken with no own TTFT sample = %v, want the fleet's 0.2", got)
	}
	if e.FleetLatency(later) != 0.5 || e.FleetFirstToken(later) != 0.2 {
		t.Fatalf("fleet getters: %v %v", e.FleetLatency(later), e.FleetFirstToken(later))
	}
}
